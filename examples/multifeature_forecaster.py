"""Multi-feature forecaster: tomorrow's maximum temperature from two weeks of Seattle weather
(precipitation, temperatures, wind) with three stacked LSTM layers and L2 regularization.

    python examples/multifeature_forecaster.py [--epochs N] [--out DIR]
"""

import argparse

import keras_lstm
from keras_lstm.pipeline import summary_table
from keras_lstm.quickstart import dataset_path


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=40)
    parser.add_argument("--out", default="runs/multifeature")
    args = parser.parse_args(argv)
    config = keras_lstm.load_config(
        {
            "seed": 0,
            "data": {
                "path": str(dataset_path()),
                "time_column": "date",
                "features": ["precipitation", "temp_max", "temp_min", "wind"],
                "targets": ["temp_max"],
                "lookback": 14,
                "season": 365,
            },
            "model": {"units": [32, 16, 8], "l2": 1e-3, "dropout": 0.1},
            "training": {"epochs": args.epochs, "cv_splits": 3, "batch_size": 32},
        }
    )
    bundle = keras_lstm.fit(config, out_dir=args.out, verbose=0)
    bundle.save(f"{args.out}/bundle")
    print(summary_table(bundle.metrics, config.task))
    return bundle.metrics


if __name__ == "__main__":
    main()

"""Univariate forecaster: the next value of a noisy sine wave from the last 24 values.

python examples/sine_forecaster.py [--epochs N] [--out DIR]
"""

import argparse

import numpy as np
import pandas as pd

import keras_lstm
from keras_lstm.pipeline import summary_table


def make_data(rows=1500, seed=0):
    rng = np.random.default_rng(seed)
    t = np.arange(rows)
    return pd.DataFrame({"value": np.sin(2 * np.pi * t / 50) + 0.1 * rng.standard_normal(rows)})


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=40)
    parser.add_argument("--out", default="runs/sine")
    args = parser.parse_args(argv)
    config = keras_lstm.load_config(
        {
            "seed": 0,
            "data": {"targets": ["value"], "lookback": 24},
            "model": {"units": [32], "dropout": 0.0},
            "training": {"epochs": args.epochs, "cv_splits": 3, "batch_size": 32},
        }
    )
    bundle = keras_lstm.fit(config, make_data(), out_dir=args.out, verbose=0)
    bundle.save(f"{args.out}/bundle")
    print(summary_table(bundle.metrics, config.task))
    return bundle.metrics


if __name__ == "__main__":
    main()

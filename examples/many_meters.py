"""Many series, one model: forecast the next day's consumption of 20 meters of very different
sizes with one global LSTM; metrics overall and per meter.

    python examples/many_meters.py [--epochs N] [--out DIR]
"""

import argparse

import numpy as np
import pandas as pd

import keras_lstm
from keras_lstm.pipeline import summary_table


def make_data(meters=20, days=365, seed=0):
    """A long table: meter id, date, daily consumption (weekly cycle, own level), temperature."""
    rng = np.random.default_rng(seed)
    dates = pd.date_range("2023-01-01", periods=days, freq="D")
    temp = 12 + 10 * np.sin(2 * np.pi * (np.arange(days) - 100) / 365) + rng.normal(0, 2, days)
    parts = []
    for meter in range(meters):
        level = rng.uniform(5, 200)  # very different scales, as real fleets have
        weekly = 1 + 0.2 * np.sin(2 * np.pi * np.arange(days) / 7 + rng.uniform(0, 6))
        heating = 1 + 0.03 * np.clip(15 - temp, 0, None)
        usage = level * weekly * heating * rng.lognormal(0, 0.05, days)
        parts.append(
            pd.DataFrame({"meter": f"m{meter:02d}", "date": dates, "usage": usage, "temp": temp})
        )
    return pd.concat(parts, ignore_index=True)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--out", default="runs/meters")
    args = parser.parse_args(argv)
    config = keras_lstm.load_config(
        {
            "seed": 0,
            "data": {
                "series_id": "meter",
                "time_column": "date",
                "targets": ["usage"],
                "lookback": 14,
                "season": 7,
                "scale_per_series": True,  # meters of very different sizes
            },
            "model": {"units": [32], "dropout": 0.1},
            "training": {"epochs": args.epochs, "cv_splits": 3, "batch_size": 128},
        }
    )
    bundle = keras_lstm.fit(config, make_data(), out_dir=args.out, verbose=0)
    bundle.save(f"{args.out}/bundle")
    print(summary_table(bundle.metrics, config.task))
    per_meter = pd.DataFrame(bundle.metrics["test"]["per_series"]).T[["rmse", "mase"]]
    print(per_meter.round(3).head())
    return bundle.metrics


if __name__ == "__main__":
    main()

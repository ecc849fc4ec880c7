"""Multi-step (direct) forecaster: the next 24 hours of an electricity-load-like series from the
last 72 hours, with calendar features (hour of day and day of week as sine/cosine pairs).

    python examples/multistep_load.py [--epochs N] [--out DIR]
"""

import argparse

import numpy as np
import pandas as pd

import keras_lstm
from keras_lstm.pipeline import summary_table


def make_data(days=120, seed=0):
    """Hourly load with a daily and a weekly cycle, a slow trend and temperature-driven noise."""
    rng = np.random.default_rng(seed)
    time = pd.date_range("2024-01-01", periods=days * 24, freq="h")
    hour, weekday = time.hour.to_numpy(), time.day_of_week.to_numpy()
    temp = 10 + 8 * np.sin(2 * np.pi * (hour - 9) / 24) + rng.normal(0, 1.5, len(time))
    load = (
        500
        + 120 * np.sin(2 * np.pi * (hour - 7) / 24)
        - 60 * (weekday >= 5)
        + 0.05 * np.arange(len(time))
        + 4 * np.abs(temp - 15)
        + rng.normal(0, 10, len(time))
    )
    return pd.DataFrame(
        {
            "time": time.strftime("%Y-%m-%d %H:%M"),
            "load": load,
            "temp": temp,
            "hour_sin": np.sin(2 * np.pi * hour / 24),
            "hour_cos": np.cos(2 * np.pi * hour / 24),
            "week_sin": np.sin(2 * np.pi * weekday / 7),
            "week_cos": np.cos(2 * np.pi * weekday / 7),
        }
    )


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--out", default="runs/multistep")
    args = parser.parse_args(argv)
    config = keras_lstm.load_config(
        {
            "seed": 0,
            "data": {
                "time_column": "time",
                "targets": ["load"],
                "lookback": 72,
                "horizon": 24,
                "stride": 2,
                "season": 24,
            },
            "model": {"units": [48, 24], "dropout": 0.1, "dense_units": [32]},
            "training": {"epochs": args.epochs, "cv_splits": 3, "batch_size": 64},
        }
    )
    bundle = keras_lstm.fit(config, make_data(), out_dir=args.out, verbose=0)
    bundle.save(f"{args.out}/bundle")
    print(summary_table(bundle.metrics, config.task))
    return bundle.metrics


if __name__ == "__main__":
    main()

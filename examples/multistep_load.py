"""Multi-step (direct) forecaster: the next 24 hours of an electricity-load-like series from the
last 72 hours, with inputs known in advance (the calendar, and a temperature forecast for the
day ahead) and 90% prediction intervals; then tomorrow's forecast from the history and
tomorrow's known inputs.

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
    return pd.DataFrame({"time": time.strftime("%Y-%m-%d %H:%M"), "load": load, "temp": temp})


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
                "future_features": ["temp"],  # a temperature forecast, known a day ahead
                "calendar": ["hour", "day_of_week"],  # derived from `time`, sin and cos
            },
            "model": {"units": [48, 24], "dropout": 0.1, "dense_units": [32]},
            "training": {
                "epochs": args.epochs,
                "cv_splits": 3,
                "batch_size": 64,
                "interval": 0.9,
            },
        }
    )
    data = make_data()
    history, tomorrow = data.iloc[:-24], data.iloc[-24:]
    bundle = keras_lstm.fit(config, history, out_dir=args.out, verbose=0)
    bundle.save(f"{args.out}/bundle")
    print(summary_table(bundle.metrics, config.task))
    # tomorrow: the last 72 hours, then 24 rows with the known inputs and no load
    rows = pd.concat([history.tail(72), tomorrow.assign(load=np.nan)], ignore_index=True)
    forecast = bundle.predict(rows).iloc[-1]
    print("tomorrow 00:00-02:00 (forecast, 90% interval, actual):")
    for k in range(1, 4):
        print(
            f"  {forecast[f'load@t+{k}']:.0f} [{forecast[f'load@t+{k}_lower']:.0f}, "
            f"{forecast[f'load@t+{k}_upper']:.0f}]  {tomorrow.load.iloc[k - 1]:.0f}"
        )
    return bundle.metrics


if __name__ == "__main__":
    main()

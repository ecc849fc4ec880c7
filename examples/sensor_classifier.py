"""Sequence classifier: the gesture behind each variable-length accelerometer recording (one
label per recording), with the whole-sequence classifier defaults: a convolutional front, a
Bidirectional LSTM and attention pooling over the whole sequence. Only the columns are given.

    python examples/sensor_classifier.py [--epochs N] [--out DIR]
"""

import argparse

import numpy as np
import pandas as pd

import keras_lstm
from keras_lstm.pipeline import summary_table

GESTURES = ("circle", "shake", "tap")


def make_data(recordings=150, seed=0):
    """A long table: recording id, time step, 3-axis acceleration, gesture label."""
    rng = np.random.default_rng(seed)
    rows = []
    for rec in range(recordings):
        gesture = GESTURES[rec % 3]
        n = int(rng.integers(30, 60))
        t = np.arange(n) / 10
        if gesture == "circle":
            ax, ay, az = np.sin(2 * t), np.cos(2 * t), 0 * t
        elif gesture == "shake":
            ax, ay, az = np.sign(np.sin(12 * t)), 0 * t, 0.3 * np.sin(12 * t)
        else:
            ax, ay, az = 0 * t, 0 * t, (np.abs(t - t[n // 2]) < 0.3) * 2.0
        noise = rng.normal(0, 0.3, (3, n))
        for k in range(n):
            rows.append(
                {
                    "recording": rec,
                    "step": k,
                    "ax": ax[k] + noise[0, k],
                    "ay": ay[k] + noise[1, k],
                    "az": az[k] + noise[2, k],
                    "gesture": gesture,
                }
            )
    return pd.DataFrame(rows)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--epochs", type=int, help="the most epochs per fit (default: the classifier budget)"
    )
    parser.add_argument("--out", default="runs/sensor")
    args = parser.parse_args(argv)
    config = keras_lstm.load_config(
        {
            "task": "classification",
            "seed": 0,
            "data": {
                "series_id": "recording",
                "label": "gesture",
                "features": ["ax", "ay", "az"],
                "test_size": 0.2,
            },
            "training": {"cv_splits": 3, **({"epochs": args.epochs} if args.epochs else {})},
        }
    )
    bundle = keras_lstm.fit(config, make_data(), out_dir=args.out, verbose=0)
    bundle.save(f"{args.out}/bundle")
    print(summary_table(bundle.metrics, config.task))
    return bundle.metrics


if __name__ == "__main__":
    main()

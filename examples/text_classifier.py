"""Text classifier: the sentiment of short product reviews with Embedding + Bidirectional LSTM.
The vocabulary (TextVectorization) is fitted on training texts only and stored in the bundle.

    python examples/text_classifier.py [--epochs N] [--out DIR]
"""

import argparse

import numpy as np
import pandas as pd

import keras_lstm
from keras_lstm.pipeline import summary_table

POSITIVE = "great excellent love perfect works fast sturdy recommend happy solid".split()
NEGATIVE = "broken terrible hate slow flimsy refund waste poor awful disappointed".split()
NEUTRAL = "the this it product arrived box was and with after day week item".split()


def make_data(reviews=600, seed=0):
    """Reviews mixing neutral filler with sentiment words; negations flip a few."""
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(reviews):
        positive = i % 2 == 0
        words = list(rng.choice(NEUTRAL, rng.integers(3, 8)))
        words += list(rng.choice(POSITIVE if positive else NEGATIVE, rng.integers(1, 3)))
        if rng.random() < 0.15:  # a little label noise, as in real reviews
            positive = not positive
        rng.shuffle(words)
        rows.append({"review": " ".join(words), "sentiment": "pos" if positive else "neg"})
    return pd.DataFrame(rows)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--out", default="runs/text")
    args = parser.parse_args(argv)
    config = keras_lstm.load_config(
        {
            "task": "classification",
            "seed": 0,
            "data": {"features": ["review"], "targets": ["sentiment"], "lookback": 12},
            "model": {
                "embedding": {"vocab_size": 200, "dim": 16},
                "units": [16],
                "bidirectional": True,
            },
            "training": {"epochs": args.epochs, "cv_splits": 3, "batch_size": 32},
        }
    )
    bundle = keras_lstm.fit(config, make_data(), out_dir=args.out, verbose=0)
    bundle.save(f"{args.out}/bundle")
    print(summary_table(bundle.metrics, config.task))
    print(bundle.predict(["love it, works great", "arrived broken, want a refund"]))
    return bundle.metrics


if __name__ == "__main__":
    main()

"""Would averaging the cross-validation fold models with the refit cut forecast error?

`keras_lstm.fit` trains one model per walk-forward fold and then a refit on all the training
part, and keeps only the refit. This benchmark runs the same `fit` on the development series
(the accuracy benchmark's configs), keeps every model it trains, and scores on the same held-out
test windows:

- `refit`: the refit alone (what `fit` ships; its RMSE must equal `metrics.json`'s);
- `folds`: the mean forecast of the fold models;
- `all`: the mean forecast of the fold models and the refit;
- `last+refit`: the last fold's model (trained on the most data) and the refit.

Each fold model predicts through its own fold's scalers, so every forecast is in real units.

`--classifiers` does the same for the whole-sequence classifiers of the UCR sets: their folds
are stratified samples of the training sequences, not walk-forward, so each fold model saw
most of the training data. The combinations average the class probabilities; the score is the
test accuracy (the refit's must equal `metrics.json`'s).

Run from the repository root:
    python benchmarks/ensemble.py --series wineind ausbeer nile --seeds 3
    python benchmarks/ensemble.py --classifiers gunpoint arrowhead --seeds 3
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

BENCHMARKS = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCHMARKS))

from accuracy import SHARED, classifier_config, collect, series_config  # noqa: E402

SMALL = ["wineind", "ausbeer", "macro_realgdp", "nile", "elnino", "seattle"]


def run(name: str, seed: int, classifier: bool = False) -> dict:
    """One `fit` of `name` that keeps its models; the test RMSE (classifiers: accuracy) of
    each combination."""
    import keras_lstm.training.loop as loop
    from keras_lstm.config import load_config
    from keras_lstm.training import prepare

    # folds in this process, so that their models can be kept (workers give the same folds)
    overrides = {"training.fold_jobs": 1}
    make = classifier_config if classifier else series_config
    config = load_config(make(name, seed, SHARED, overrides))
    prepared = prepare(config)
    trained = []
    real_train_model = loop.train_model

    def keeping(prepared_, fold, fold_data, **kwargs):
        model, history = real_train_model(prepared_, fold, fold_data, **kwargs)
        trained.append((fold_data, model))
        return model, history

    loop.train_model = keeping
    try:
        bundle = loop.fit(config, verbose=0, prepared=prepared)
    finally:
        loop.train_model = real_train_model
    final = prepared.plan.final
    scored = [loop.evaluate(prepared, final, fold_data, model) for fold_data, model in trained]
    true = scored[-1]["true"]
    preds = [s["pred"] for s in scored]  # the folds in order, then the refit

    def rmse(pred):
        return float(np.sqrt(np.mean((pred - true) ** 2)))

    def accuracy(probabilities):
        return float(np.mean(np.argmax(probabilities, axis=-1) == true))

    score, shipped = (accuracy, "accuracy") if classifier else (rmse, "rmse")
    row = {
        "series": name,
        "seed": seed,
        "refit": score(preds[-1]),
        "folds": score(np.mean(preds[:-1], axis=0)),
        "all": score(np.mean(preds, axis=0)),
        "last+refit": score(np.mean(preds[-2:], axis=0)),
        "shipped": float(bundle.metrics["test"][shipped]),
    }
    return row


def table(rows: list[dict]) -> str:
    import pandas as pd

    frame = pd.DataFrame(rows)
    lines = [
        "| series | seeds | refit (shipped) | folds' mean | folds + refit | last fold + refit |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    ratios = {key: [] for key in ("folds", "all", "last+refit")}
    for name, group in frame.groupby("series", sort=False):
        mean = group.mean(numeric_only=True)
        cells = [name, str(len(group)), f"{mean['refit']:.4g}"]
        for key in ratios:
            ratios[key].append(mean[key] / mean["refit"])
            cells.append(f"{mean[key]:.4g} ({mean[key] / mean['refit']:.3f})")
        lines.append("| " + " | ".join(cells) + " |")
    geo = {k: float(np.exp(np.mean(np.log(v)))) for k, v in ratios.items()}
    lines.append(
        "\nGeometric mean of the score / the refit's (RMSE, or accuracy for classifiers): "
        + ", ".join(f"{key} {value:.3f}" for key, value in geo.items())
    )
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--series", nargs="+", default=SMALL)
    parser.add_argument("--classifiers", nargs="+", help="UCR sets instead of the series")
    parser.add_argument("--seeds", type=int, default=1)
    parser.add_argument("--first-seed", type=int, default=0)
    parser.add_argument("--jsonl", type=Path, help="append each run's row to this file")
    args = parser.parse_args(argv)
    seeds = range(args.first_seed, args.first_seed + args.seeds)
    names = args.classifiers or args.series
    jobs = [(name, seed) for name in names for seed in seeds]
    classifier = bool(args.classifiers)
    rows = collect(jobs, lambda job: run(*job, classifier), json.dumps, args.jsonl)
    for row in rows:  # the refit scored here is the model `fit` shipped
        assert abs(row["refit"] - row["shipped"]) <= 1e-6 * max(1.0, row["shipped"]), row
    print()
    print(table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())

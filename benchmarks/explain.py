"""Explanations: does permutation importance (and SHAP) put the true driver first, and how long
does explaining a bundle take?

Two cases, each trained with the defaults, then explained as a user would, with
`keras-lstm explain RUN --input DATA --out DIR --shap` in its own process:

- `synthetic`: `y[t] = 2 * x1[t - 3]` plus noise, `x2` pure noise, 2,000 rows, lookback 8: the
  only cause is x1, at lag 3;
- `seattle`: the quickstart (tomorrow's maximum temperature from 14 days of weather): no known
  truth, but a forecaster of temperature should lean on past temperatures.

Run from the repository root:
    python benchmarks/explain.py
    python benchmarks/explain.py --cases synthetic --jsonl explain.jsonl
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

LAG = 3


def synthetic_frame(n=2000, seed=0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    x1, x2 = rng.standard_normal(n), rng.standard_normal(n)
    y = np.zeros(n)
    y[LAG:] = 2 * x1[:-LAG]
    return pd.DataFrame({"y": y + 0.1 * rng.standard_normal(n), "x1": x1, "x2": x2})


def case(name: str, folder: Path) -> tuple[dict, Path]:
    """The config and data file of a case."""
    if name == "synthetic":
        data = folder / "synthetic.csv"
        synthetic_frame().to_csv(data, index=False)
        return {"seed": 0, "data": {"path": str(data), "targets": ["y"], "lookback": 8}}, data
    from keras_lstm.quickstart import dataset_path, quickstart_config

    config = quickstart_config(100).to_dict()
    config.pop("export", None)
    return config, dataset_path()


def run(name: str) -> dict:
    from keras_lstm.pipeline import train_and_save

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        config, data = case(name, folder)
        started = time.perf_counter()
        train_and_save(config, folder / "run", verbose=0)
        trained = time.perf_counter() - started
        row = {"case": name, "train_seconds": trained}
        for label, extra in (("permutation", []), ("shap", ["--shap", "--no-lags"])):
            out = folder / f"explained-{label}"
            command = [
                sys.executable,
                "-c",
                "from keras_lstm.cli import main; raise SystemExit(main())",
                "explain",
                str(folder / "run"),
                "--input",
                str(data),
                "--out",
                str(out),
                *extra,
            ]
            started = time.perf_counter()
            done = subprocess.run(command, capture_output=True, text=True)
            row[f"{label}_command_seconds"] = time.perf_counter() - started
            if done.returncode != 0:
                raise SystemExit(done.stderr[-2000:])
            saved = json.loads((out / "explain.json").read_text())
            row[f"{label}_explain_seconds"] = saved["seconds"]
            if label == "permutation":
                row.update(
                    metric=saved["metric"],
                    score=saved["score"],
                    columns={k: v["mean"] for k, v in saved["columns"].items()},
                    column_std={k: v["std"] for k, v in saved["columns"].items()},
                    top_lags=saved["top_lags"],
                    paths=saved["paths"],
                )
            else:
                row["top_shap_lags"] = saved["top_shap_lags"]
        return row


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", nargs="*", default=["synthetic", "seattle"])
    parser.add_argument("--jsonl", type=Path, help="append each case's figures to this file")
    args = parser.parse_args(argv)
    for name in args.cases:
        row = run(name)
        print(json.dumps(row, indent=1), flush=True)
        if args.jsonl:
            with open(args.jsonl, "a") as handle:
                handle.write(json.dumps(row) + "\n")


if __name__ == "__main__":
    main()

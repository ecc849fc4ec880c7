"""Keras Tuner searches scored by walk-forward cross-validation.

`CVTuner` is a Keras Tuner `BaseTuner` whose `run_trial` maps the trial's hyperparameters onto
the config and runs `keras_lstm.cross_validate` on it: the same folds, per-fold scalers and
callbacks as `keras-lstm train`, never touching the held-out test part. Every trial is scored on
the same target rows (those after the longest lookback searched), so trials with different
lookbacks are comparable. The objective is the mean validation loss over the folds.

Keras Tuner's stock `Tuner.run_trial` (model building through a hypermodel, `model.fit`,
TensorBoard callbacks) is not used.
"""

from __future__ import annotations

import dataclasses
import gc
import json
import math
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import keras
import keras_tuner as kt
import numpy as np
import pandas as pd

from keras_lstm.config import Config, load_config
from keras_lstm.errors import KerasLSTMError
from keras_lstm.files import atomic_write_text
from keras_lstm.pipeline import summary_table as metrics_table
from keras_lstm.pipeline import train_and_save
from keras_lstm.training import cross_validate, prepare
from tuning.search_space import HYPERBAND_EPOCHS, SearchSpace

OBJECTIVE = "val_loss"
PROJECT = "search"  # Keras Tuner's project folder inside the output folder
ERROR_FILE = "error.txt"
HYPERBAND_FACTOR = 3


class TuningError(KerasLSTMError):
    """No trial of a search finished; the trials table holds each trial's error."""


def make_oracle(config: Config, *, max_consecutive_failed_trials: int = 3):
    """The Keras Tuner oracle of `config.tuning.algorithm`, minimising `val_loss`.

    The oracle's seed is `config.seed + 1` because Keras Tuner takes a seed of 0 as no seed.
    Hyperband's largest epoch budget is `training.epochs`; `tuning.max_trials` does not apply
    to it (its brackets decide the number of trials).
    """
    objective = kt.Objective(OBJECTIVE, direction="min")
    seed = None if config.seed is None else config.seed + 1
    common = {
        "objective": objective,
        "seed": seed,
        "max_consecutive_failed_trials": max_consecutive_failed_trials,
    }
    algorithm = config.tuning.algorithm
    if algorithm == "random":
        return kt.oracles.RandomSearchOracle(max_trials=config.tuning.max_trials, **common)
    if algorithm == "bayesian":
        return kt.oracles.BayesianOptimizationOracle(max_trials=config.tuning.max_trials, **common)
    return kt.oracles.HyperbandOracle(
        max_epochs=max(config.training.epochs, 2), factor=HYPERBAND_FACTOR, **common
    )


class _PreparedCache:
    """Loads and plans the data once per distinct data/split setting, not once per trial."""

    def __init__(self, data, first_target: int):
        self.data = data
        self.first_target = first_target
        self.entries: dict[str, object] = {}

    def get(self, config: Config):
        key = json.dumps(
            [
                config.task,
                config.to_dict()["data"],
                config.training.cv_splits,
                config.training.cv_gap,
            ],
            sort_keys=True,
        )
        if key not in self.entries:
            self.entries.clear()  # one entry at a time keeps memory flat over many trials
            self.entries[key] = prepare(config, self.data, self.first_target)
        return dataclasses.replace(self.entries[key], config=config)


class CVTuner(kt.engine.base_tuner.BaseTuner):
    """A Keras Tuner whose trials are walk-forward cross-validations of a config.

    Args:
        oracle: a Keras Tuner oracle (see `make_oracle`) with objective `val_loss`, min.
        space: the `SearchSpace`; its base config is what every trial starts from.
        data: a DataFrame or CSV path; default the config's `data.path`.
        directory: the output folder; Keras Tuner's state lives in `directory/search`.
        overwrite: start afresh instead of resuming.

    Example:
        >>> space = SearchSpace.from_config(config)  # doctest: +SKIP
        >>> tuner = CVTuner(make_oracle(config), space, frame, directory="tune")  # doctest: +SKIP
        >>> tuner.search(verbose=1)  # doctest: +SKIP
    """

    def __init__(self, oracle, space: SearchSpace, data=None, *, directory, overwrite=False):
        self.space = space
        self.prepared = _PreparedCache(data, space.max_lookback)
        super().__init__(
            oracle,
            hypermodel=space.declare,
            directory=str(directory),
            project_name=PROJECT,
            overwrite=overwrite,
        )

    def run_trial(self, trial, *args, **kwargs):
        """Cross-validate the trial's config; return the mean and per-fold validation losses.

        Raises:
            keras_tuner.errors.FailedTrialError: anything went wrong (the trial is recorded as
                FAILED with the error, and the search goes on).
        """
        keras.backend.clear_session()
        gc.collect()
        started = time.perf_counter()
        try:
            config = self.space.config_for(trial.hyperparameters)
            # No fold checkpoints: a shared `backup_dir` would mix trials, and the oracle already
            # reruns an interrupted trial from the start.
            run_config = config.replace(**{"training.backup_dir": None})
            if run_config.training.fold_workers == "auto":
                # hundreds of fits in one process: fit in workers so memory stays flat
                run_config = run_config.replace(**{"training.fold_workers": "always"})
            cv = cross_validate(
                run_config,
                self.prepared.data,
                first_target=self.space.max_lookback,
                verbose=0,
                prepared=self.prepared.get(run_config),
            )
            losses = [fold.val_loss for fold in cv.folds]
            if not all(math.isfinite(loss) for loss in losses):
                raise FloatingPointError(
                    f"the validation loss is not finite ({losses}): training diverged"
                )
        except Exception as err:
            message = f"{type(err).__name__}: {' '.join(str(err).split())}"
            number = trial_number(trial.trial_id)
            print(f"Trial {number} failed: {message}", file=sys.stderr, flush=True)
            # Keras Tuner's gRPC messages do not carry a trial's error from a worker to the
            # chief; a file in the shared trial folder does.
            atomic_write_text(Path(self.get_trial_dir(trial.trial_id)) / ERROR_FILE, message)
            raise kt.errors.FailedTrialError(message) from err
        finally:
            keras.backend.clear_session()
            gc.collect()
        metrics = {
            OBJECTIVE: float(np.mean(losses)),
            "val_loss_std": float(np.std(losses)),
            "seconds": time.perf_counter() - started,
        }
        metrics.update({f"fold_{i + 1}_val_loss": float(v) for i, v in enumerate(losses)})
        return metrics


# --- results ------------------------------------------------------------------------------------


def trial_number(trial_id: str) -> int:
    """The number Keras Tuner prints for a trial (`Search: Running Trial #N`, `Trial N Complete`).

    Keras Tuner's oracle names a new trial by the count of trials before it, zero-padded
    (`"0"`, `"01"`, ...; its folder is `trial_<id>`), then prints the count including it: trial
    `"0"` is `Trial #1`. Our table, plot and messages use this number, so they match its output.

    Example:
        >>> trial_number("0"), trial_number("07")
        (1, 8)
    """
    return int(trial_id) + 1


def _error_line(message: str | None) -> str:
    """The one-line error of a failed trial from Keras Tuner's stored traceback."""
    if not message:
        return ""
    lines = [line for line in message.strip().splitlines() if line.strip()]
    last = lines[-1] if lines else message
    prefix = "FailedTrialError: "
    return last.split(prefix, 1)[1] if prefix in last else last


def _metric(trial, name):
    if trial.metrics.exists(name):
        return trial.metrics.get_last_value(name)
    return None


def _trial_error(trial, project_dir: Path | None) -> str:
    error = _error_line(trial.message)
    if not error and project_dir is not None:
        path = project_dir / f"trial_{trial.trial_id}" / ERROR_FILE
        if path.is_file():
            error = path.read_text().strip()
    return error


def trials_frame(oracle, space: SearchSpace, project_dir: Path | None = None) -> pd.DataFrame:
    """One row per trial, in trial order: number, id, status, hyperparameters, fold losses,
    mean, std, seconds, error.

    `trial` is the number Keras Tuner prints (`Trial #1` is the first; `trial_number`);
    `trial_id` is Keras Tuner's zero-based id, which names the trial's folder
    `search/trial_<trial_id>` (read it back as text: ids may be zero-padded, `"01"`).
    """
    rows = []
    for trial_id in sorted(oracle.trials, key=trial_number):
        trial = oracle.trials[trial_id]
        values = trial.hyperparameters.values
        row = {"trial": trial_number(trial_id), "trial_id": trial_id, "status": str(trial.status)}
        for dimension in space.dimensions:
            value = values.get(dimension.key)
            row[dimension.key] = value if value is None else dimension.decode(value)
            if isinstance(row[dimension.key], list):
                row[dimension.key] = json.dumps(row[dimension.key])
        if HYPERBAND_EPOCHS in values:
            row["training.epochs"] = values[HYPERBAND_EPOCHS]
        fold = 1
        while trial.metrics.exists(f"fold_{fold}_val_loss"):
            row[f"fold_{fold}_val_loss"] = _metric(trial, f"fold_{fold}_val_loss")
            fold += 1
        row["val_loss"] = _metric(trial, OBJECTIVE)
        row["val_loss_std"] = _metric(trial, "val_loss_std")
        row["seconds"] = _metric(trial, "seconds")
        row["error"] = "" if str(trial.status) == "COMPLETED" else _trial_error(trial, project_dir)
        rows.append(row)
    frame = pd.DataFrame(rows)
    if frame.empty:
        return frame
    folds = sorted(
        (c for c in frame.columns if c.startswith("fold_")), key=lambda c: int(c.split("_")[1])
    )
    head = [c for c in frame.columns if not c.startswith("fold_") and c not in _TAIL]
    return frame[head + folds + [c for c in _TAIL if c in frame.columns]]


_TAIL = ("val_loss", "val_loss_std", "seconds", "error")


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def objective_figure(trials: pd.DataFrame):
    """Each completed trial's objective and the best so far against the trial number (as Keras
    Tuner counts, `trial_number`), on whole-number ticks."""
    from matplotlib.ticker import MaxNLocator

    figure, axes = _pyplot().subplots(figsize=(7, 4))
    done = trials[trials["status"] == "COMPLETED"] if not trials.empty else trials
    if not done.empty:
        numbers = done["trial"].to_numpy(dtype=int)
        losses = done["val_loss"].to_numpy(dtype=float)
        axes.plot(numbers, losses, "o", label="trial")
        axes.step(numbers, np.minimum.accumulate(losses), where="post", label="best so far")
        axes.legend()
    axes.xaxis.set_major_locator(MaxNLocator(integer=True))
    axes.set_xlabel("trial (Keras Tuner's Trial #)")
    axes.set_ylabel("mean CV validation loss")
    axes.set_title("Tuning objective")
    return figure


def plot_objective(trials: pd.DataFrame, path: Path) -> Path:
    """Write `objective_figure(trials)` to `path` as a PNG; return `path`."""
    figure = objective_figure(trials)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=100)
    _pyplot().close(figure)
    return path


def summary_table(trials: pd.DataFrame, best_trial: int | None, limit: int = 10) -> str:
    """A plain-text table of the best `limit` trials (then failed ones), best marked with *.

    Args:
        trials: the trials table (`trials_frame`).
        best_trial: the best trial's number (the table's `trial`, as Keras Tuner counts).
        limit: the most completed trials shown.
    """
    if trials.empty:
        return "(no trials)"
    ordered = pd.concat(
        [
            trials[trials["status"] == "COMPLETED"].sort_values("val_loss").head(limit),
            trials[trials["status"] != "COMPLETED"],
        ]
    )
    hidden = {"seconds", "trial_id"}
    columns = [c for c in ordered.columns if not c.startswith("fold_") and c not in hidden]

    def cell(value) -> str:
        if value is None or (isinstance(value, float) and math.isnan(value)):
            return "-"
        if isinstance(value, float):
            return f"{value:.4g}"
        return str(value)

    rows = [["", *columns]]
    for _, record in ordered.iterrows():
        mark = "*" if record["trial"] == best_trial else ""
        rows.append([mark, *[cell(record[c]) for c in columns]])
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join(
        "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in rows
    )


@dataclass
class TuneResult:
    """What a search gave.

    Attributes:
        best_config: the full config of the best trial (also written to `best_config.yaml`).
        best_trial: the best trial's number, as Keras Tuner prints it (`Trial #1` is 1).
        best_trial_id: its Keras Tuner id (zero-based; its folder is `search/trial_<id>`).
        best_score: its mean CV validation loss.
        trials: the trials table (also written to `trials.csv`).
        bundle: the refitted best config's `Bundle`, or None when `tuning.refit` is false.
        out_dir: the output folder.
    """

    best_config: Config
    best_trial: int
    best_trial_id: str
    best_score: float
    trials: pd.DataFrame
    bundle: object = None
    out_dir: Path | None = None
    files: dict = field(default_factory=dict)


def write_results(tuner: CVTuner, out_dir: Path) -> pd.DataFrame:
    """Write `trials.csv` and `objective.png` from the oracle's trials; return the table."""
    trials = trials_frame(tuner.oracle, tuner.space, Path(tuner.project_dir))
    atomic_write_text(out_dir / "trials.csv", trials.to_csv(index=False))
    plot_objective(trials, out_dir / "objective.png")
    return trials


def _say(verbose, message: str) -> None:
    if verbose not in (0, False):
        print(message, flush=True)


def tune(config, data=None, *, out_dir, overwrite=False, verbose=1) -> TuneResult | None:
    """Search `config.tuning.search_space`, scoring each trial by walk-forward CV.

    Writes into `out_dir`: Keras Tuner's state (`search/`, so a killed search started again
    resumes and keeps its finished trials), `trials.csv`, `objective.png`, `best_config.yaml`
    (a full, ready-to-run config) and, when `tuning.refit`, the best config's bundle and
    `metrics.json` under `best/`.

    Args:
        config: a `Config`, a dict or a path to a YAML/JSON config.
        data: a DataFrame or CSV path; default the config's `data.path`.
        out_dir: the output folder.
        overwrite: start afresh (deletes the Keras Tuner state) instead of resuming. Never
            pass it in several processes of one distributed search.
        verbose: 0 silent; 1 Keras Tuner's progress and the summary table.

    Returns:
        A `TuneResult`; None in a distributed worker (the chief writes the results).

    Raises:
        ConfigError: a bad config or search space (the message names the key).
        TuningError: no trial finished (`trials.csv` holds each trial's error).

    Example:
        >>> result = tune("config.yaml", out_dir="tune")  # doctest: +SKIP
        >>> result.best_config.model.units, result.best_score  # doctest: +SKIP
    """
    from keras_tuner.src.distribute import utils as dist_utils

    config = load_config(config)
    space = SearchSpace.from_config(config)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    tuner = CVTuner(make_oracle(config), space, data, directory=out_dir, overwrite=overwrite)
    is_worker = dist_utils.has_chief_oracle() and not dist_utils.is_chief_oracle()
    search_error = None
    try:
        tuner.search(verbose=verbose)
    except RuntimeError as err:  # Keras Tuner's "consecutive failures exceeded the limit"
        if is_worker:
            raise
        search_error = err
    if is_worker:
        return None

    trials = write_results(tuner, out_dir)
    best = tuner.oracle.get_best_trials(1)
    if not best or best[0].score is None or search_error is not None:
        failed = trials[trials["status"] != "COMPLETED"] if not trials.empty else trials
        first = failed["error"].iloc[0] if not failed.empty else "no trial ran"
        reason = (
            f"the search stopped after {tuner.oracle.max_consecutive_failed_trials} consecutive "
            "failed trials"
            if search_error is not None
            else "no trial finished"
        )
        raise TuningError(
            f"Tuning failed: {reason} ({len(failed)} of {len(trials)} trials failed; first "
            f"error: {first}). See {out_dir / 'trials.csv'} and fix the search space or data."
        )
    best_trial = best[0]
    best_config = space.config_for(best_trial.hyperparameters)
    best_config.save(out_dir / "best_config.yaml")
    number = trial_number(best_trial.trial_id)
    _say(verbose, "\n" + summary_table(trials, number))
    _say(
        verbose,
        f"\nBest trial #{number} ({PROJECT}/trial_{best_trial.trial_id}): mean CV validation "
        f"loss {best_trial.score:.6g}\n"
        f"Trials: {out_dir / 'trials.csv'}\nBest config: {out_dir / 'best_config.yaml'}",
    )
    result = TuneResult(
        best_config=best_config,
        best_trial=number,
        best_trial_id=best_trial.trial_id,
        best_score=float(best_trial.score),
        trials=trials,
        out_dir=out_dir,
        files={
            "trials": out_dir / "trials.csv",
            "best_config": out_dir / "best_config.yaml",
            "objective_plot": out_dir / "objective.png",
        },
    )
    if config.tuning.refit:
        result.bundle = refit_best(best_config, data, out_dir / "best", verbose)
        result.files["bundle"] = out_dir / "best" / "bundle"
        result.files["metrics"] = out_dir / "best" / "metrics.json"
    return result


def refit_best(config: Config, data, out: Path, verbose=1):
    """`keras-lstm train` on the best config: CV, test, refit; writes the bundle and metrics."""
    _say(verbose, f"\nFitting the best config into {out}")
    bundle = train_and_save(config, out, 0 if verbose in (0, False) else 2, data)
    _say(verbose, "\n" + metrics_table(bundle.metrics, config.task))
    return bundle

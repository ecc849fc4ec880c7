"""The main job as one call: fit a config, save its run folder, and summarise the result.

The CLI (`keras-lstm train`, `quickstart`) and tuning's refit all go through here, so a run
folder always has the same layout: `bundle/`, `metrics.json`, `backup/` (and
`scaler-NAME/backup/` for each scaler a whole-sequence `data.scaler: cv` cross-validated).

Example:
    >>> from keras_lstm.pipeline import summary_table, train_and_save
    >>> bundle = train_and_save("config.yaml", Path("run"))  # doctest: +SKIP
    >>> print(summary_table(bundle.metrics, bundle.config.task))  # doctest: +SKIP
"""

from __future__ import annotations

import json
from pathlib import Path

from keras_lstm.bundle import CONFIG_FILE
from keras_lstm.config import from_dict
from keras_lstm.errors import OutputError
from keras_lstm.files import atomic_write_text, folder_lock
from keras_lstm.training.loop import fit


def _fmt(value) -> str:
    if value is None:
        return "-"
    return f"{value:.4g}"


def summary_table(metrics: dict, task: str) -> str:
    """A plain-text table: each fold, mean ± std, the baselines' CV means, test, and the
    baselines on the test part; then why a metric shown as '-' is missing (`metrics["notes"]`),
    the intervals, and `verdict_line`.

    Example:
        >>> print(summary_table(bundle.metrics, "regression"))  # doctest: +SKIP
    """
    names = (
        ["rmse", "mae", "smape", "mase", "r2"]
        if task == "regression"
        else ["accuracy", "f1_macro", "auc", "log_loss"]
    )
    rows = [["", *names]]
    for fold in metrics["cv"]["folds"]:
        rows.append([f"fold {fold['fold'] + 1}", *[_fmt(fold.get(n)) for n in names]])
    mean, std = metrics["cv"]["mean"], metrics["cv"]["std"]
    rows.append(["cv mean ± std", *[f"{_fmt(mean.get(n))} ± {_fmt(std.get(n))}" for n in names]])
    for name, values in metrics["baselines"].items():  # the figures the CV verdict uses
        if values.get("cv"):
            rows.append([f"{name} (cv mean)", *[_fmt(values["cv"].get(n)) for n in names]])
    rows.append(["test", *[_fmt(metrics["test"].get(n)) for n in names]])
    for name, values in metrics["baselines"].items():
        rows.append([f"{name} (test)", *[_fmt(values["test"].get(n)) for n in names]])
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    table = "\n".join(
        "  ".join(c.rjust(w) for c, w in zip(row, widths, strict=True)) for row in rows
    )
    notes = "".join(f"Note: {note}\n" for note in metrics.get("notes", []))
    return (
        table
        + "\n"
        + notes
        + scaler_line(metrics)
        + interval_lines(metrics)
        + verdict_line(metrics)
    )


def scaler_line(metrics: dict) -> str:
    """The scaler `data.scaler: cv` chose by cross-validation and each candidate's CV
    score (empty where nothing was chosen between).

    Example:
        >>> choice = {"chosen": "standard", "cv": {"sequence": {"accuracy": 0.8},
        ...     "standard": {"accuracy": 0.97}}}
        >>> line = scaler_line({"training": {"scaler_choice": choice}})
        >>> line.startswith("Scaler: standard, chosen by the cross-validation (sequence: accuracy")
        True
    """
    choice = (metrics.get("training") or {}).get("scaler_choice")
    if not choice or len(choice["cv"]) < 2:
        return ""
    scores = "; ".join(
        f"{name}: " + ", ".join(f"{k} {_fmt(v)}" for k, v in score.items())
        for name, score in choice["cv"].items()
    )
    return f"Scaler: {choice['chosen']}, chosen by the cross-validation ({scores})\n"


def interval_lines(metrics: dict) -> str:
    """One line per interval level: the test coverage beside the nominal level, and the mean
    width, per target (empty without `training.interval`)."""
    coverage = metrics["test"].get("interval_coverage") or {}
    width = metrics["test"].get("interval_width") or {}
    lines = []
    for level, per_target in coverage.items():
        parts = [
            f"{name} coverage {share:.3f}, mean width {_fmt(width[level][name])}"
            for name, share in per_target.items()
        ]
        lines.append(f"{float(level):.0%} interval (test): {'; '.join(parts)}")
    return "".join(line + "\n" for line in lines)


def verdict_line(metrics: dict) -> str:
    """One line saying plainly whether the model beats the best baseline on CV and test."""
    comparison = metrics.get("baseline_comparison") or {}
    parts, losing = [], []
    for part in ("cv", "test"):
        c = comparison.get(part)
        if c is None:
            continue
        relation = "beats" if c["beats"] else "LOSES TO"
        parts.append(
            f"{part}: {relation} {c['best_baseline']} ({c['metric']} {_fmt(c['model'])} vs "
            f"{_fmt(c['baseline'])})"
        )
        if not c["beats"]:
            losing.append(part)
    if not parts:
        return "No baseline to compare with."
    if losing:
        head = (
            f"WARNING: the model does not beat the best baseline on {' and '.join(losing)}; "
            "a baseline is the better forecaster here."
        )
    else:
        head = "The model beats every baseline on CV and test."
    return f"{head} {'; '.join(parts)}."


def check_run_folder(config, out: Path, overwrite: bool = False) -> None:
    """Refuse (`OutputError`, nothing touched) a run folder that holds a finished run of another
    config, unless `overwrite`: training into it would replace that run's bundle and metrics
    without a word. A folder of the same config (a run to resume or repeat), an empty or a
    missing one is fine.

    Example:
        >>> check_run_folder(load_config("config.yaml"), Path("run"))  # doctest: +SKIP
    """
    saved = Path(out) / "bundle" / CONFIG_FILE
    if overwrite or not saved.is_file():
        return
    import yaml

    try:
        earlier = from_dict(yaml.safe_load(saved.read_text(encoding="utf-8")) or {})
    except Exception:  # an unreadable earlier config: not the same run either
        earlier = None
    if earlier is not None and earlier.to_dict() == config.to_dict():
        return
    changed = _changed_keys(earlier.to_dict(), config.to_dict()) if earlier else ["(unreadable)"]
    shown = ", ".join(changed[:3]) + (f" and {len(changed) - 3} more" if len(changed) > 3 else "")
    raise OutputError(
        f"{str(out)!r} holds a finished run of another config (differs in {shown}; see "
        f"{saved}). Choose another --out, or add --overwrite to replace that run."
    )


def _changed_keys(before: dict, after: dict, prefix: str = "") -> list[str]:
    """The dotted keys whose values differ between two nested config dicts."""
    keys = []
    for key in sorted(set(before) | set(after), key=str):
        a, b = before.get(key), after.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            keys += _changed_keys(a, b, f"{prefix}{key}.")
        elif a != b:
            keys.append(f"{prefix}{key}")
    return keys


def train_and_save(config, out: Path, verbose="auto", data=None, prepared=None):
    """Fit a config (on `data`, default `config.data.path`, or on data already `prepared`),
    write the bundle, `metrics.json` and plots under `out`; return the bundle.

    While it runs, `out/.lock` is held: another run into the same folder is refused
    (`TrainingError`). A killed run leaves no lock held, so running it again resumes.

    Example:
        >>> bundle = train_and_save("config.yaml", Path("run"))  # doctest: +SKIP
        >>> sorted(p.name for p in Path("run").iterdir())  # doctest: +SKIP
        ['backup', 'bundle', 'metrics.json']
    """
    out = Path(out)
    with folder_lock(out):  # a second run into the same folder is refused, not interleaved
        bundle = fit(config, data, out_dir=out, verbose=verbose, prepared=prepared)
        bundle.save(out / "bundle")
        atomic_write_text(out / "metrics.json", json.dumps(bundle.metrics, indent=2))
    return bundle

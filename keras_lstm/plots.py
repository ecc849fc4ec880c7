"""PNG plots of a training run: losses per fold, forecast against actual, metrics per fold."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_plots(bundle, directory: str | Path) -> list[Path]:
    """Write `loss.png`, `forecast.png` and `folds.png` for a freshly fitted bundle.

    Returns:
        The paths written.
    """
    plt = _pyplot()
    directory = Path(directory)
    report = bundle.report
    written = []

    fig, ax = plt.subplots(figsize=(8, 4.5))
    for fold in report["cv"].folds:
        (line,) = ax.plot(fold.history.get("loss", []), label=f"fold {fold.index + 1} train")
        ax.plot(
            fold.history.get("val_loss", []),
            linestyle="--",
            color=line.get_color(),
            label=f"fold {fold.index + 1} validation",
        )
    ax.set(xlabel="epoch", ylabel="loss (scaled units)", title="Training and validation loss")
    ax.set_yscale("log")
    ax.legend(fontsize="small", ncol=2)
    written.append(_save(fig, directory / "loss.png"))

    true, pred, index = report["test_true"], report["test_pred"], report["test_index"]
    if bundle.preprocessing["task"] == "regression":
        names = bundle.preprocessing["target_names"]
        fig, axes = plt.subplots(len(names), 1, figsize=(10, 3.5 * len(names)), squeeze=False)
        horizon = true.shape[1]
        bands = report.get("test_bounds") or {}
        for i, name in enumerate(names):
            ax = axes[i, 0]
            steps = np.arange(true[:, :, i].size)
            for level, (lower, upper) in sorted(bands.items(), reverse=True):
                ax.fill_between(
                    steps,
                    lower[:, :, i].ravel(),
                    upper[:, :, i].ravel(),
                    color="tab:orange",
                    alpha=0.15 + 0.1 * (level == min(bands)),
                    linewidth=0,
                    label=f"{level:.0%} interval",
                )
            ax.plot(steps, true[:, :, i].ravel(), label="actual")
            ax.plot(steps, pred[:, :, i].ravel(), label="forecast")
            ax.set(
                title=f"{name}: test part (from {index[0]})",
                xlabel=f"test step ({horizon} per window)",
            )
            ax.legend()
        written.append(_save(fig, directory / "forecast.png"))
        key = "rmse"
    else:
        from sklearn.metrics import ConfusionMatrixDisplay

        fig, ax = plt.subplots(figsize=(5, 5))
        classes = bundle.preprocessing["classes"]
        ConfusionMatrixDisplay.from_predictions(
            true, pred.argmax(1), labels=list(range(len(classes))), display_labels=classes, ax=ax
        )
        ax.set_title("Test part: confusion matrix")
        written.append(_save(fig, directory / "confusion.png"))
        key = "accuracy"

    cv = report["cv"]
    fig, ax = plt.subplots(figsize=(8, 4.5))
    labels = [f"fold {f.index + 1}" for f in cv.folds]
    series = {"model": [f.metrics[key] for f in cv.folds]}
    for name in cv.folds[0].baselines:
        series[name] = [f.baselines[name][key] for f in cv.folds]
    width = 0.8 / len(series)
    for i, (name, values) in enumerate(series.items()):
        ax.bar(np.arange(len(labels)) + i * width, values, width, label=name)
    ax.set_xticks(np.arange(len(labels)) + width * (len(series) - 1) / 2, labels)
    ax.set(ylabel=key, title=f"Validation {key} per fold, beside the baselines")
    ax.legend()
    written.append(_save(fig, directory / "folds.png"))
    return written


def _save(fig, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    _pyplot().close(fig)
    return path

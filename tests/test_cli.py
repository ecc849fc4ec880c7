"""End-to-end runs of the `keras-lstm` command, as a user would type it."""

import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import yaml


def _run(*args, cwd=None):
    return subprocess.run(
        [sys.executable, "-m", "keras_lstm.cli", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=600,
    )


@pytest.fixture(scope="module")
def sine_run(tmp_path_factory):
    """A noisy sine whose period (24) is longer than the lookback (12): an LSTM must beat the
    naive forecast here."""
    root = tmp_path_factory.mktemp("cli")
    rng = np.random.default_rng(0)
    t = np.arange(500)
    frame = pd.DataFrame(
        {
            "step": t,
            "y": np.sin(2 * np.pi * t / 24) + 0.05 * rng.standard_normal(500),
        }
    )
    frame.to_csv(root / "sine.csv", index=False)
    config = {
        "seed": 1,
        "data": {"path": "sine.csv", "time_column": "step", "targets": ["y"], "lookback": 12},
        "model": {"units": [16], "dropout": 0.0},
        "training": {"epochs": 40, "cv_splits": 2, "batch_size": 32, "learning_rate": 0.01},
    }
    (root / "config.yaml").write_text(yaml.safe_dump(config))
    result = _run("train", "config.yaml", "--out", "run", cwd=root)
    return root, result


def test_train_writes_metrics_and_beats_naive(sine_run):
    root, result = sine_run
    assert result.returncode == 0, result.stderr
    assert "cv mean ± std" in result.stdout and "naive (test)" in result.stdout
    assert "fold 1/2" in result.stdout and "fold 2/2" in result.stdout
    metrics = json.loads((root / "run" / "metrics.json").read_text())
    assert set(metrics["cv"]) == {"folds", "mean", "std"}
    assert len(metrics["cv"]["folds"]) == 2
    for key in ("rmse", "mae", "mape", "smape", "mase", "r2"):
        assert key in metrics["test"] and key in metrics["cv"]["mean"]
    assert set(metrics["baselines"]) == {"naive", "seasonal_naive"}
    assert metrics["test"]["rmse"] < 0.6 * metrics["baselines"]["naive"]["test"]["rmse"]
    for name in ("model.keras", "preprocessing.json", "config.yaml", "forecast.png"):
        assert (root / "run" / "bundle" / name).is_file()


def test_train_epochs_caps_every_fit_and_a_log_gets_plain_lines(sine_run):
    root, full = sine_run
    result = _run("train", "config.yaml", "--out", "short", "--epochs", "2", cwd=root)
    assert result.returncode == 0, result.stderr
    short = json.loads((root / "short" / "metrics.json").read_text())
    uncapped = json.loads((root / "run" / "metrics.json").read_text())
    assert max(short["training"]["fold_best_epochs"]) <= 2 and short["refit_epochs"] <= 2
    assert max(uncapped["training"]["fold_best_epochs"]) > 2  # the cap, not the data, ends it
    for run in (full, result):  # captured output is not a terminal: no progress bars
        assert "\x1b[" not in run.stdout and "\r" not in run.stdout
        assert "Epoch 1/" in run.stdout
        assert run.stderr == "", run.stderr  # no TensorFlow notices, no warnings
    assert "naive (cv mean)" in result.stdout  # the figure the CV verdict compares with
    plots = [line for line in result.stdout.splitlines() if line.startswith("Plots: ")]
    assert plots and all(
        (root / name).is_file() for name in plots[0].removeprefix("Plots: ").split(", ")
    )
    assert "forecast.png" in plots[0]


def test_predict_writes_real_unit_predictions(sine_run):
    root, _ = sine_run
    frame = pd.read_csv(root / "sine.csv").tail(40)
    frame.to_csv(root / "recent.csv", index=False)
    result = _run("predict", "run/bundle", "--input", "recent.csv", "--output", "p.csv", cwd=root)
    assert result.returncode == 0, result.stderr
    out = pd.read_csv(root / "p.csv")
    assert len(out) == 40 - 12 + 1
    assert list(out.columns) == ["step", "y"]
    assert out["step"].iloc[-1] == frame["step"].iloc[-1] + 1
    truth = frame["y"].to_numpy()[12:]
    assert np.sqrt(np.mean((out["y"].to_numpy()[:-1] - truth) ** 2)) < 0.2


def test_predict_without_the_time_column_labels_row_positions(sine_run):
    root, _ = sine_run
    frame = pd.read_csv(root / "sine.csv").tail(40).drop(columns="step")
    frame.to_csv(root / "untimed.csv", index=False)
    result = _run("predict", "run/bundle", "--input", "untimed.csv", "--output", "u.csv", cwd=root)
    assert result.returncode == 0, result.stderr
    out = pd.read_csv(root / "u.csv")
    assert list(out.columns) == ["row", "y"]  # not "time": these are positions in the input
    assert out["row"].tolist() == list(range(12, 41))  # the row each forecast is for


@pytest.mark.parametrize(
    "args, message",
    [
        (["train", "missing.yaml"], "missing.yaml' does not exist"),
        (["train", "bad.yaml"], "Unknown config key `model.unit`. Did you mean `model.units`?"),
        (["predict", "nowhere", "--input", "bad.yaml"], "Bundle folder 'nowhere' does not exist"),
        (["predict", "nowhere", "--input", "nope.csv"], "Input file 'nope.csv' does not exist"),
    ],
)
def test_bad_input_is_one_line_and_exit_code_2(tmp_path, args, message):
    (tmp_path / "bad.yaml").write_text("model:\n  unit: [4]\n")
    result = _run(*args, cwd=tmp_path)
    assert result.returncode == 2
    assert message in result.stderr
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert list(p.name for p in tmp_path.iterdir()) == ["bad.yaml"]


def test_help_lists_every_command():
    result = _run("--help")
    for command in ("quickstart", "train", "predict", "tune", "export"):
        assert command in result.stdout


def test_a_finished_run_of_another_config_is_refused_unless_overwrite(tmp_path):
    from keras_lstm import load_config
    from keras_lstm.errors import OutputError
    from keras_lstm.pipeline import check_run_folder

    config = load_config({"data": {"targets": ["y"], "lookback": 12}})
    check_run_folder(config, tmp_path / "new")  # no folder yet: nothing to protect
    config.save(tmp_path / "run" / "bundle" / "config.yaml")
    check_run_folder(config, tmp_path / "run")  # the same config: resumed or repeated
    other = config.replace(**{"data.lookback": 24, "training.epochs": 5})
    with pytest.raises(OutputError, match=r"differs in data\.lookback, training\.epochs"):
        check_run_folder(other, tmp_path / "run")
    check_run_folder(other, tmp_path / "run", overwrite=True)  # asked for: allowed


def test_train_over_another_run_needs_overwrite(sine_run):
    import shutil

    root, _ = sine_run
    shutil.copytree(root / "run", root / "again", ignore=shutil.ignore_patterns(".lock"))
    before = (root / "again" / "bundle" / "model.keras").read_bytes()
    refused = _run("train", "config.yaml", "--out", "again", "--epochs", "1", cwd=root)
    assert refused.returncode == 2
    assert "differs in training.epochs" in refused.stderr and "--overwrite" in refused.stderr
    assert (root / "again" / "bundle" / "model.keras").read_bytes() == before
    replaced = _run(
        "train", "config.yaml", "--out", "again", "--epochs", "1", "--overwrite", cwd=root
    )
    assert replaced.returncode == 0, replaced.stderr
    metrics = json.loads((root / "again" / "metrics.json").read_text())
    assert metrics["refit_epochs"] == 1

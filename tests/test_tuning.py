"""Tests of `tuning`: searches scored by walk-forward CV, failures, resume, seeds, distribution.

Tiny data and models (units 4, 1-2 epochs, 2 folds, 2-3 trials) keep each search short.
"""

import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

import tuning
import tuning.tuner
from keras_lstm.config import load_config
from keras_lstm.errors import ConfigError
from keras_lstm.training import cross_validate
from tuning.search_space import DEFAULT_SEARCH_SPACE, SearchSpace
from tuning.tuner import CVTuner, _PreparedCache, make_oracle, objective_figure, summary_table

ROOT = Path(__file__).resolve().parents[1]


def _frame(rows=200):
    rng = np.random.default_rng(0)
    t = np.arange(rows)
    return pd.DataFrame({"y": np.sin(2 * np.pi * t / 20) + 0.1 * rng.standard_normal(rows)})


def _config(
    algorithm="random",
    max_trials=3,
    search_space=None,
    epochs=1,
    fold_workers="never",
    **tuning_extra,
):
    # Most tests fit in this process (a worker costs seconds of TensorFlow start-up); the
    # shared `random_search` and the tests below it run the default, trials in workers.
    space = search_space or {"data.lookback": [4, 8, 12], "model.units": [[4], [4, 4]]}
    return load_config(
        {
            "seed": 3,
            "data": {"targets": ["y"], "lookback": 8},
            "model": {"units": [4], "dropout": 0.0, "l2": 0.0},
            "training": {
                "epochs": epochs,
                "cv_splits": 2,
                "batch_size": 32,
                "fold_workers": fold_workers,
            },
            "tuning": {
                "algorithm": algorithm,
                "max_trials": max_trials,
                "refit": False,
                "search_space": space,
                **tuning_extra,
            },
        }
    )


@pytest.fixture(scope="module")
def frame():
    return _frame()


@pytest.fixture(scope="module")
def random_search(frame, tmp_path_factory):
    """One 3-trial random search shared by the tests that only read its results."""
    from tensorflow.python.eager import context

    out = tmp_path_factory.mktemp("random")
    before = set(context.context().list_function_names())
    result = tuning.tune(_config(fold_workers="auto"), frame, out_dir=out, verbose=0)
    # functions TensorFlow keeps for every model fitted in this process (others may be freed)
    added = set(context.context().list_function_names()) - before
    TRACED_IN_THIS_PROCESS["random_search"] = sorted(added)
    return result


TRACED_IN_THIS_PROCESS = {}


# --- search space ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("space", "match"),
    [
        ({"model.unitz": [[4]]}, "model.unitz"),
        ({"model.units": []}, "model.units.*no choices"),
        ({"data.lookback": {"min": 12, "max": 4}}, "data.lookback.*min must not exceed max"),
        ({"training.learning_rate": {"min": 0.0, "max": 1.0, "sampling": "log"}}, "min > 0"),
        ({"model.dropout": {"min": 0.1, "max": 0.5, "steps": 0.1}}, "model.dropout"),
        ({"model.dropout": [0.1, 1.5]}, "model.dropout"),
        ({"seed": [1, 2]}, "seed"),
        ({"model.cell": "lstm"}, "model.cell"),
    ],
)
def test_bad_search_space_raises_config_error_naming_the_key(space, match, tmp_path):
    config = _config(search_space=space)
    with pytest.raises(ConfigError, match=match):
        SearchSpace.from_config(config)
    with pytest.raises(ConfigError, match=match):
        tuning.tune(config, _frame(), out_dir=tmp_path, verbose=0)


def test_default_search_space_is_plain_data_and_valid():
    config = load_config({"data": {"targets": ["y"]}})
    space = SearchSpace.from_config(config)
    assert [d.key for d in space.dimensions] == list(DEFAULT_SEARCH_SPACE)
    assert space.max_lookback == config.data.lookback


def test_list_choices_are_encoded_and_decoded():
    import keras_tuner as kt

    space = SearchSpace.from_config(_config())
    hp = kt.HyperParameters()
    space.declare(hp)
    assert hp.values["model.units"] == "[4]"  # Keras Tuner's Choice takes scalars only
    hp.values["model.units"] = "[4, 4]"
    hp.values["data.lookback"] = 12
    config = space.config_for(hp)
    assert config.model.units == (4, 4) and config.data.lookback == 12
    assert space.max_lookback == 12


def test_ranges_become_int_and_float_hyperparameters():
    import keras_tuner as kt

    space = SearchSpace.from_config(
        _config(
            search_space={
                "data.lookback": {"min": 4, "max": 12, "step": 4},
                "training.learning_rate": {"min": 1e-4, "max": 1e-2, "sampling": "log"},
            }
        )
    )
    hp = kt.HyperParameters()
    space.declare(hp)
    assert isinstance(hp.get("data.lookback"), int)
    assert isinstance(hp.get("training.learning_rate"), float)
    assert space.max_lookback == 12


def test_tuned_lookback_changes_the_windows_not_the_target_times(frame):
    space = SearchSpace.from_config(_config())
    cache = _PreparedCache(frame, space.max_lookback)
    short = cache.get(space.base.replace(**{"data.lookback": 4}))
    long = cache.get(space.base.replace(**{"data.lookback": 12}))
    assert short.input_shape[0] == 4 and long.input_shape[0] == 12
    fold_short, fold_long = short.plan.folds[0], long.plan.folds[0]
    # The same target rows are validated whatever the lookback, so trials are comparable.
    np.testing.assert_array_equal(fold_short.validation, fold_long.validation)
    windows_short = short.fold_data(fold_short).windows
    windows_long = long.fold_data(fold_long).windows
    row = int(fold_short.validation[0])
    assert windows_short.inputs([row]).shape[1] == 4
    assert windows_long.inputs([row]).shape[1] == 12


# --- searches -------------------------------------------------------------------------------


def _assert_table_agrees_with_oracle(result, expected_trials):
    import keras_tuner  # noqa: F401

    trials = pd.read_csv(result.out_dir / "trials.csv", dtype={"trial_id": str})
    assert len(trials) == expected_trials
    assert set(trials["status"]) == {"COMPLETED"}
    assert trials["trial"].tolist() == list(range(1, expected_trials + 1))
    state_dir = result.out_dir / "search"
    for _, row in trials.iterrows():
        saved = yaml.safe_load((state_dir / f"trial_{row['trial_id']}" / "trial.json").read_text())
        assert saved["trial_id"] == row["trial_id"] and row["trial"] == int(row["trial_id"]) + 1
        assert saved["status"] == "COMPLETED"
        assert row["val_loss"] == pytest.approx(saved["score"])
        folds = [row[c] for c in trials.columns if c.startswith("fold_")]
        assert len(folds) == 2
        assert row["val_loss"] == pytest.approx(np.mean(folds))
        assert row["val_loss_std"] == pytest.approx(np.std(folds))
    best = trials.loc[trials["val_loss"].idxmin()]
    assert best["trial"] == result.best_trial and best["trial_id"] == result.best_trial_id
    assert result.best_score == pytest.approx(best["val_loss"])


def test_random_search_writes_table_best_config_and_plot(random_search):
    _assert_table_agrees_with_oracle(random_search, 3)
    out = random_search.out_dir
    assert (out / "objective.png").stat().st_size > 0
    saved = load_config(out / "best_config.yaml")
    assert saved == random_search.best_config
    row = random_search.trials.set_index("trial").loc[random_search.best_trial]
    assert saved.data.lookback == row["data.lookback"]
    assert list(saved.model.units) == yaml.safe_load(row["model.units"])


def test_objective_is_the_mean_of_independently_computed_fold_losses(random_search, frame):
    best = random_search.best_config
    cv = cross_validate(best, frame, first_target=12, verbose=0)
    row = random_search.trials.set_index("trial").loc[random_search.best_trial]
    assert [f.val_loss for f in cv.folds] == pytest.approx(
        [row["fold_1_val_loss"], row["fold_2_val_loss"]], rel=1e-5
    )
    assert random_search.best_score == pytest.approx(np.mean([f.val_loss for f in cv.folds]))


def test_trials_are_fitted_in_worker_processes_by_default(random_search):
    assert TRACED_IN_THIS_PROCESS["random_search"] == []
    assert random_search.best_config.training.fold_workers == "auto"  # saved as written


def test_trials_use_different_lookbacks(random_search):
    assert random_search.trials["data.lookback"].nunique() > 1


def test_bayesian_config_makes_keras_tuners_bayesian_oracle():
    import keras_tuner as kt

    from tuning.tuner import make_oracle

    oracle = make_oracle(_config("bayesian", max_trials=2))
    assert isinstance(oracle, kt.oracles.BayesianOptimizationOracle)
    assert oracle.max_trials == 2 and oracle.objective.name == "val_loss"


# a whole search with the Bayesian oracle: about 30 s, and the search loop is the one the
# random and Hyperband searches above run by default
@pytest.mark.slow
def test_bayesian_search(frame, tmp_path):
    result = tuning.tune(_config("bayesian", max_trials=2), frame, out_dir=tmp_path, verbose=0)
    _assert_table_agrees_with_oracle(result, 2)


def test_hyperband_epoch_budget_reaches_the_fit(frame, tmp_path, monkeypatch):
    seen = []
    real = tuning.tuner.cross_validate

    def recording(config, *args, **kwargs):
        seen.append(config.training.epochs)
        return real(config, *args, **kwargs)

    monkeypatch.setattr(tuning.tuner, "cross_validate", recording)
    config = _config("hyperband", search_space={"model.units": [[4], [4, 4]]}, epochs=2)
    result = tuning.tune(config, frame, out_dir=tmp_path, verbose=0)
    _assert_table_agrees_with_oracle(result, len(seen))
    assert seen == result.trials["training.epochs"].tolist()
    assert set(seen) <= {1, 2}
    assert result.best_config.training.epochs in seen


def test_failing_trial_is_reported_and_the_search_goes_on(frame, tmp_path, capsys):
    # A horizon longer than the series is a valid config value but cannot make one window.
    config = _config(search_space={"data.horizon": [1, 500]}, max_trials=2)
    result = tuning.tune(config, frame, out_dir=tmp_path, verbose=0)
    trials = pd.read_csv(tmp_path / "trials.csv").set_index("data.horizon")
    assert trials.loc[500, "status"] == "FAILED"
    assert (
        "DataError" in trials.loc[500, "error"] and "lookback + horizon" in trials.loc[500, "error"]
    )
    assert trials.loc[1, "status"] == "COMPLETED"
    assert result.best_config.data.horizon == 1
    # the message counts trials as Keras Tuner's "Trial #N" does, like the table
    assert f"Trial {trials.loc[500, 'trial']} failed: DataError" in capsys.readouterr().err


def test_all_trials_failing_is_an_error_not_a_silent_none(frame, tmp_path):
    config = _config(search_space={"data.horizon": [400, 500]}, max_trials=2)
    with pytest.raises(tuning.TuningError, match="2 of 2 trials failed.*DataError"):
        tuning.tune(config, frame, out_dir=tmp_path, verbose=0)
    assert (tmp_path / "trials.csv").is_file()


# about a minute; resuming a search is also covered by test_crash_safety's killed search
@pytest.mark.slow
def test_resume_after_an_interrupted_search_keeps_finished_trials(frame, tmp_path, monkeypatch):
    real = tuning.tuner.cross_validate
    calls = []

    def interrupted(config, *args, **kwargs):
        calls.append(config.data.lookback)
        if len(calls) == 2:
            raise KeyboardInterrupt  # like Ctrl-C or a kill in the middle of the second trial
        return real(config, *args, **kwargs)

    config = _config(max_trials=2)
    monkeypatch.setattr(tuning.tuner, "cross_validate", interrupted)
    with pytest.raises(KeyboardInterrupt):
        tuning.tune(config, frame, out_dir=tmp_path, verbose=0)
    first_score = yaml.safe_load((tmp_path / "search" / "trial_0" / "trial.json").read_text())
    assert first_score["status"] == "COMPLETED"

    def counted(config, *args, **kwargs):
        calls.append(config.data.lookback)
        return real(config, *args, **kwargs)

    calls.clear()
    monkeypatch.setattr(tuning.tuner, "cross_validate", counted)
    result = tuning.tune(config, frame, out_dir=tmp_path, verbose=0)
    assert len(calls) == 1  # only the interrupted trial runs again
    trials = result.trials.set_index("trial_id")
    assert list(trials.index) == ["0", "1"] and trials["trial"].tolist() == [1, 2]
    assert trials.loc["0", "val_loss"] == pytest.approx(first_score["score"])

    calls.clear()
    fresh = tuning.tune(_config(max_trials=1), frame, out_dir=tmp_path, overwrite=True, verbose=0)
    assert len(calls) == 1 and list(fresh.trials["trial_id"]) == ["0"]  # overwrite starts afresh


# about 40 s; seeded determinism is also checked for training (test_training) and workers
@pytest.mark.slow
def test_two_seeded_searches_agree(random_search, frame, tmp_path):
    # A seeded random search proposes the same sequence, so a fresh 2-trial search repeats the
    # first two trials of the 3-trial one, hyperparameters and fold losses alike; the first
    # search fitted in worker processes, this one in this process.
    again = tuning.tune(_config(max_trials=2), frame, out_dir=tmp_path, verbose=0)
    columns = ["trial", "data.lookback", "model.units", "fold_1_val_loss", "fold_2_val_loss"]
    pd.testing.assert_frame_equal(again.trials[columns], random_search.trials[columns].head(2))


def test_trial_numbers_are_the_ones_keras_tuner_prints(tmp_path, capsys):
    # 11 trials: Keras Tuner pads the ids to the width of max_trials ("00" ... "10")
    space = {"training.learning_rate": {"min": 1e-4, "max": 1e-2, "sampling": "log"}}
    config = _config(search_space=space, max_trials=11)
    tuner = CVTuner(make_oracle(config), SearchSpace.from_config(config), directory=tmp_path)
    oracle = tuner.oracle
    losses = [5.0, 4.0, 6.0, 3.0, 7.0, 8.0, 9.0, 10.0, 11.0, 12.0, 2.0]
    for loss in losses:  # what `search` does around each `run_trial`, without the fits
        trial = oracle.create_trial("tuner0")
        oracle.update_trial(trial.trial_id, {"val_loss": loss})
        trial.status = "COMPLETED"
        oracle.end_trial(trial)
    printed = capsys.readouterr().out
    shown = [int(n) for n in re.findall(r"Search: Running Trial #(\d+)", printed)]
    trials = tuning.tuner.trials_frame(oracle, tuner.space, Path(tuner.project_dir))
    assert shown == list(range(1, 12))
    assert trials["trial"].tolist() == shown
    assert trials["val_loss"].tolist() == losses
    assert trials["trial_id"].tolist()[:2] == ["00", "01"]
    assert all((tmp_path / "search" / f"trial_{i}").is_dir() for i in trials["trial_id"])
    best = [line for line in summary_table(trials, 11).splitlines() if line.startswith("*")]
    assert len(best) == 1 and best[0].split()[1] == "11"
    figure = objective_figure(trials)
    points = figure.axes[0].lines[0]
    assert points.get_xdata().tolist() == shown


def test_objective_plot_has_whole_trial_ticks():
    # three trials: matplotlib's default ticks would be 1.0, 1.25, 1.5, ...
    trials = pd.DataFrame(
        {"trial": [1, 2, 3], "status": ["COMPLETED"] * 3, "val_loss": [0.5, 0.3, 0.4]}
    )
    axes = objective_figure(trials).axes[0]
    low, high = axes.get_xlim()
    ticks = [t for t in axes.get_xticks() if low <= t <= high]
    assert len(ticks) >= 2 and all(float(t).is_integer() for t in ticks)
    assert axes.lines[0].get_xdata().tolist() == [1, 2, 3]


# --- command line and distribution ----------------------------------------------------------


def _write_config(tmp_path, **tuning_extra):
    _frame().to_csv(tmp_path / "series.csv", index=False)
    raw = _config(**tuning_extra).to_dict()
    raw["data"]["path"] = "series.csv"
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


@pytest.mark.slow
def test_cli_tune_refits_the_best_config(tmp_path, capsys):
    from keras_lstm.cli import main

    path = _write_config(tmp_path, max_trials=1, refit=True)
    out = tmp_path / "tune"
    assert main(["tune", str(path), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "Best trial #1 (search/trial_0)" in printed and "test" in printed
    assert printed.strip().splitlines()[-1].startswith(f"Best bundle: {out / 'best' / 'bundle'}")
    assert (out / "best" / "bundle").is_dir()
    assert "test" in yaml.safe_load((out / "best" / "metrics.json").read_text())
    assert load_config(out / "best_config.yaml").data.path == str(tmp_path / "series.csv")


def test_cli_refuses_overwrite_in_distributed_mode(tmp_path, capsys):
    from keras_lstm.cli import main

    path = _write_config(tmp_path)
    code = main(["tune", str(path), "--chief", "127.0.0.1:8123", "--overwrite"])
    assert code == 2 and "--overwrite is refused" in capsys.readouterr().err
    assert main(["tune", str(path), "--worker", "1"]) == 2
    assert main(["tune", str(path), "--chief", "127.0.0.1:port"]) == 2


def _free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.slow
def test_chief_and_two_workers_complete_every_trial_once(tmp_path):
    path = _write_config(tmp_path, max_trials=4)
    out = tmp_path / "tune"
    address = f"127.0.0.1:{_free_port()}"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TF_CPP_MIN_LOG_LEVEL": "3"}
    command = [sys.executable, "-m", "keras_lstm.cli", "tune", str(path), "--out", str(out)]
    chief = subprocess.Popen([*command, "--chief", address], env=env, cwd=ROOT)
    time.sleep(5)
    workers = [
        subprocess.Popen([*command, "--chief", address, "--worker", str(i)], env=env, cwd=ROOT)
        for i in range(2)
    ]
    try:
        for worker in workers:
            assert worker.wait(timeout=600) == 0
        assert chief.wait(timeout=120) == 0
    finally:
        for process in [chief, *workers]:
            if process.poll() is None:
                process.kill()
    trials = pd.read_csv(out / "trials.csv", dtype={"trial_id": str})
    assert sorted(trials["trial_id"]) == ["0", "1", "2", "3"]
    assert sorted(trials["trial"]) == [1, 2, 3, 4]
    assert set(trials["status"]) == {"COMPLETED"}
    oracle = yaml.safe_load((out / "search" / "oracle.json").read_text())
    assert sorted(oracle["end_order"]) == ["0", "1", "2", "3"]
    assert set(oracle["run_times"].values()) == {1}  # each trial ran exactly once
    assert (out / "best_config.yaml").is_file()


def test_a_worker_killed_mid_trial_marks_that_trial_and_the_search_finishes(
    frame, tmp_path, monkeypatch
):
    from keras_lstm.training import workers

    real_command, calls = workers._command, []

    def kill_the_second_worker(folder):
        calls.append(folder)
        if len(calls) == 2:  # as the OOM killer would: SIGKILL, no answer written
            return [sys.executable, "-c", "import os, signal; os.kill(os.getpid(), signal.SIGKILL)"]
        return real_command(folder)

    monkeypatch.setattr(workers, "_command", kill_the_second_worker)
    config = _config(fold_workers="always", search_space={"model.units": [[4], [5], [6]]})
    result = tuning.tune(config, frame, out_dir=tmp_path, verbose=0)
    trials = pd.read_csv(tmp_path / "trials.csv")
    assert len(trials) == 3 and len(calls) == 3  # each trial's folds in one worker
    assert trials["status"].tolist().count("COMPLETED") == 2
    killed = trials[trials["status"] == "FAILED"]
    assert len(killed) == 1
    assert re.search(r"WorkerError.*exited with code -9", killed["error"].iloc[0])
    completed = trials.loc[trials["status"] == "COMPLETED", "trial"].astype(str)
    assert str(result.best_trial) in set(completed)


def test_tune_ends_with_where_the_best_model_is():
    from tuning.cli import closing_line

    with_refit = {"best_config": "tune/best_config.yaml", "bundle": "tune/best/bundle"}
    assert closing_line(with_refit).startswith("Best bundle: tune/best/bundle ")
    assert closing_line({"best_config": "tune/best_config.yaml"}).startswith(
        "Best config: tune/best_config.yaml "
    )

"""Tests of `keras_lstm.training.budget` and the refit rule: small data gets enough steps."""

import math

import numpy as np
import pandas as pd
import pytest

from keras_lstm.config import SEQUENCE_CLASSIFIER_MIN_STEPS as MIN_SEQUENCE_STEPS
from keras_lstm.config import TrainingConfig, load_config
from keras_lstm.training import fit, refit_epochs
from keras_lstm.training.budget import cosine_rate, fit_budget
from keras_lstm.training.loop import CVResult, FoldResult


@pytest.mark.parametrize("windows", [1, 12, 40, 100, 400, 1000, 3000, 1_000_000])
def test_budget_follows_the_documented_rule(windows):
    training = TrainingConfig()
    budget = fit_budget(training, windows)
    batch = min(64, max(8, math.ceil(windows / 16)))
    steps = math.ceil(windows / batch)
    assert budget.batch_size == batch
    assert budget.steps_per_epoch == steps
    assert budget.patience == min(100, max(10, math.ceil(400 / steps)))
    # early stopping waits at least 400 gradient steps, unless the epochs run out first
    assert budget.patience * steps >= 400 or budget.patience == training.epochs
    assert budget.epochs == training.epochs


def test_small_folds_get_far_more_steps_than_the_fixed_budget():
    training = TrainingConfig()
    auto = fit_budget(training, 40)
    fixed = fit_budget(TrainingConfig(auto_budget=False), 40)
    assert (fixed.batch_size, fixed.patience, fixed.steps_per_epoch) == (64, 10, 1)
    assert auto.steps_per_epoch * auto.patience >= 40 * fixed.steps_per_epoch * fixed.patience


@pytest.mark.parametrize("sequences", [29, 160, 430, 5000])
def test_whole_sequence_fits_may_take_the_minimum_steps(sequences):
    training = TrainingConfig()
    budget = fit_budget(training, sequences, min_steps=MIN_SEQUENCE_STEPS)
    plain = fit_budget(training, sequences)
    assert budget.batch_size == plain.batch_size
    assert budget.epochs == max(100, math.ceil(MIN_SEQUENCE_STEPS / plain.steps_per_epoch))
    assert budget.epochs * budget.steps_per_epoch >= MIN_SEQUENCE_STEPS
    assert budget.patience == max(10, math.ceil(400 / plain.steps_per_epoch))
    # without auto_budget the config is taken as given
    fixed = fit_budget(TrainingConfig(auto_budget=False), sequences, min_steps=10_000)
    assert fixed.epochs == 100


def test_sequence_classifiers_get_min_steps_unless_epochs_are_set():
    raw = {"task": "classification", "data": {"series_id": "id", "label": "y"}}
    assert load_config(raw).training.min_steps == MIN_SEQUENCE_STEPS
    assert load_config({**raw, "training": {"epochs": 3}}).training.min_steps == 0
    assert load_config({"task": "classification"}).training.min_steps == 0


def test_min_steps_lengthen_cross_validation_fits(tmp_path):
    """Folds of 12 sequences (2 steps per epoch) with `epochs: 2` and `min_steps: 12` run 6
    epochs each; without `min_steps`, 2."""
    from keras_lstm.training import cross_validate

    rng = np.random.default_rng(0)
    rows = [
        {"id": i, "x": float(rng.standard_normal() + (i % 2)), "y": i % 2}
        for i in range(32)
        for _ in range(6)
    ]
    config = {
        "task": "classification",
        "data": {"series_id": "id", "label": "y", "test_size": 8},
        "model": {"units": [3], "conv_filters": []},
        "training": {"epochs": 2, "cv_splits": 2, "batch_size": 8},
    }
    runs = []
    for min_steps in (12, 0):
        config["training"]["min_steps"] = min_steps
        cv = cross_validate(load_config(config), pd.DataFrame(rows), verbose=0)
        runs.append([fold.epochs_run for fold in cv.folds])
    assert runs == [[6, 6], [2, 2]]


def test_auto_budget_false_uses_the_config_as_given():
    training = TrainingConfig(
        auto_budget=False, batch_size=5, early_stopping_patience=3, reduce_lr_patience=2
    )
    budget = fit_budget(training, 1000, epochs=7)
    assert (budget.batch_size, budget.patience, budget.reduce_lr_patience, budget.epochs) == (
        5,
        3,
        2,
        7,
    )


def _cv(best_epochs):
    folds = [
        FoldResult(i, {"rmse": 1.0}, {}, 1.0, best, best + 5) for i, best in enumerate(best_epochs)
    ]
    return CVResult(folds)


@pytest.mark.parametrize(
    "best, expected", [([1, 1, 40], 40), ([30, 2, 3], 3), ([5, 9, 7], 7), ([1, 1, 1], 1)]
)
def test_refit_epochs_never_below_the_last_fold_or_the_median(best, expected):
    assert refit_epochs(_cv(best)) == expected
    assert refit_epochs(_cv(best)) >= max(best[-1], int(np.median(best)))


def _small_series(rows=100, seed=0):
    rng = np.random.default_rng(seed)
    t = np.arange(rows)
    return pd.DataFrame({"y": 5 + np.sin(2 * np.pi * t / 10) + 0.1 * rng.standard_normal(rows)})


@pytest.fixture(scope="module")
def small_runs():
    """A 100-point series trained with the budget on and off (everything else the same)."""
    frame = _small_series()
    runs = {}
    for auto in (True, False):
        config = load_config(
            {
                "seed": 1,
                "data": {"targets": ["y"], "lookback": 10, "scaler": "window"},
                "model": {"units": [8], "dropout": 0.0},
                "training": {"epochs": 12, "cv_splits": 2, "auto_budget": auto},
            }
        )
        runs[auto] = fit(config, frame, verbose=0)
    return runs


def test_small_series_refit_trains_at_least_as_long_as_the_last_fold(small_runs):
    bundle = small_runs[True]
    metrics = bundle.metrics
    best = metrics["training"]["fold_best_epochs"]
    assert metrics["refit_epochs"] >= best[-1]
    assert metrics["refit_epochs"] >= int(np.median(best))
    # the refit really ran that many epochs
    assert len(bundle.report["refit_history"]["loss"]) == metrics["refit_epochs"]


def test_budget_option_changes_the_batches(small_runs):
    on, off = (small_runs[auto].metrics["training"]["refit_budget"] for auto in (True, False))
    windows = 100 - 20 - 10  # rows before the test part, less one lookback
    assert on["batch_size"] == 8 and on["steps_per_epoch"] == math.ceil(windows / 8)
    assert off["batch_size"] == 64 and off["steps_per_epoch"] == 2
    # the optimizer's step counter shows the batches the refit really took
    model_on, model_off = small_runs[True].model, small_runs[False].model
    iterations_on = int(model_on.optimizer.iterations.numpy())
    iterations_off = int(model_off.optimizer.iterations.numpy())
    assert iterations_on == on["steps_per_epoch"] * small_runs[True].metrics["refit_epochs"]
    assert iterations_off == off["steps_per_epoch"] * small_runs[False].metrics["refit_epochs"]


@pytest.mark.parametrize("windows", [40, 400, 3000, 100_000])
def test_max_steps_cuts_only_the_fits_that_would_take_more_steps(windows):
    uncapped = fit_budget(TrainingConfig(), windows)
    capped = fit_budget(TrainingConfig(max_steps=1000), windows)
    steps = uncapped.steps_per_epoch
    assert capped.batch_size == uncapped.batch_size
    assert capped.epochs == min(100, math.ceil(1000 / steps))
    assert capped.epochs * steps < 1000 + steps  # no more than one epoch past the cap
    if uncapped.epochs * steps <= 1000:  # small data keeps its epochs
        assert capped == uncapped
    else:
        assert capped.epochs < uncapped.epochs
        assert capped.patience <= capped.epochs


def test_min_steps_wins_over_a_smaller_max_steps():
    budget = fit_budget(TrainingConfig(max_steps=10), 40, min_steps=500)
    assert budget.epochs * budget.steps_per_epoch >= 500


@pytest.mark.parametrize("windows", [40, 400, 3000, 100_000])
def test_auto_schedule_is_cosine_exactly_where_max_steps_cuts_the_fit(windows):
    uncapped = fit_budget(TrainingConfig(), windows)
    auto = fit_budget(TrainingConfig(max_steps=1000, schedule="auto"), windows)
    cut = auto.epochs < uncapped.epochs
    assert auto.schedule == ("cosine" if cut else "plateau")
    # without a cap `auto` never changes the schedule; the named schedules are taken as given
    assert fit_budget(TrainingConfig(schedule="auto"), windows).schedule == "plateau"
    plateau = TrainingConfig(max_steps=1000, schedule="plateau")
    assert fit_budget(plateau, windows).schedule == "plateau"
    assert fit_budget(TrainingConfig(schedule="cosine"), windows).schedule == "cosine"
    # the refit passes its folds' schedule
    assert fit_budget(TrainingConfig(schedule="auto"), windows, schedule="cosine").schedule == (
        "cosine"
    )


def test_cosine_rate_falls_from_the_rate_to_near_zero():
    rates = [cosine_rate(0.01, epoch, 20) for epoch in range(20)]
    assert rates[0] == 0.01
    assert all(a > b for a, b in zip(rates, rates[1:], strict=False))
    assert rates[10] == pytest.approx(0.005)
    assert 0 < rates[-1] < 0.01 * 0.01


def _cosine(peak: float, epochs: int) -> list[float]:
    return [peak * 0.5 * (1 + math.cos(math.pi * e / epochs)) for e in range(epochs)]


def test_cosine_schedule_sets_every_epochs_rate_in_folds_and_refit():
    """`schedule: auto` with a `max_steps` that cuts every fit: each fold's learning rate
    follows the cosine over its own epochs from the batch-scaled rate, and the refit follows
    it too; with `plateau` the rate stays at `learning_rate` until a plateau halves it."""
    frame = _small_series(rows=400)
    runs = {}
    for schedule in ("auto", "plateau"):
        config = load_config(
            {
                "seed": 1,
                "data": {"targets": ["y"], "lookback": 10, "scaler": "window"},
                "model": {"units": [8], "dropout": 0.0},
                "training": {
                    "epochs": 12,
                    "cv_splits": 2,
                    "max_steps": 120,
                    "learning_rate": 0.004,
                    "schedule": schedule,
                },
            }
        )
        runs[schedule] = fit(config, frame, verbose=0)
    bundle = runs["auto"]
    batches = []
    for fold in bundle.report["cv"].folds:
        windows = len(bundle.prepared.plan.folds[fold.index].train)
        batch = max(8, math.ceil(windows / 16))  # the budget's rule, written out
        planned = math.ceil(120 / math.ceil(windows / batch))
        assert planned < 12  # the cap cut it
        rates = fold.history["learning_rate"]
        expected = _cosine(0.004 * math.sqrt(batch / 8), planned)
        assert rates == pytest.approx(expected[: len(rates)], rel=1e-5)
        batches.append(batch)
    assert max(batches) > 8  # so the batch scaling was exercised
    refit = bundle.report["refit_history"]["learning_rate"]
    budget = bundle.metrics["training"]["refit_budget"]
    assert budget["schedule"] == "cosine"
    peak = 0.004 * math.sqrt(budget["batch_size"] / 8)
    assert refit == pytest.approx(_cosine(peak, bundle.metrics["refit_epochs"]), rel=1e-5)
    plateau = runs["plateau"]
    assert plateau.metrics["training"]["refit_budget"]["schedule"] == "plateau"
    for fold in plateau.report["cv"].folds:
        rates = np.asarray(fold.history["learning_rate"]) / 0.004
        assert rates[0] == pytest.approx(1.0)
        assert np.all(np.isclose(np.log2(rates), np.round(np.log2(rates)), atol=1e-4))


def test_by_default_no_fit_is_capped_and_the_rate_follows_plateaus():
    """The cap and the cosine are opt-in: with the defaults a fit of any size takes its
    epochs under `ReduceLROnPlateau` at `learning_rate`; `auto` with a cap anneals only the
    fits it cuts, from the square-root batch-scaled rate."""
    from keras_lstm.config import from_dict

    default = load_config({})
    assert default.training.max_steps == 0 and default.training.schedule == "plateau"
    assert from_dict(default.to_dict()) == default
    for windows in (10, 128, 1280, 3130, 100_000):
        budget = fit_budget(default.training, windows)
        assert budget.epochs == 100 and budget.schedule == "plateau"
        assert budget.learning_rate == default.training.learning_rate
    opted = load_config({"training": {"max_steps": 2000, "schedule": "auto"}}).training
    assert fit_budget(opted, 1280).schedule == "plateau"  # 20 steps x 100 epochs: not cut
    large = fit_budget(opted, 3130)
    assert large.schedule == "cosine" and large.epochs == math.ceil(2000 / 49)
    assert large.learning_rate == pytest.approx(1e-3 * math.sqrt(64 / 8))

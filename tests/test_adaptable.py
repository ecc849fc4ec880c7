"""The adaptable TFLite file (`tflite_export.adaptable`) and `LitePredictor.adapt`."""

import json

import numpy as np
import pandas as pd
import pytest

from keras_lstm.errors import BundleError, DataError, ExportError
from keras_lstm.training import fit
from tflite_export import LitePredictor
from tflite_export.adaptable import ADAPT_BATCH, export_adaptable


def _series(n=400, seed=0, gain=2.0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(n)
    y = np.zeros(n)
    y[2:] = gain * x[:-2]
    return pd.DataFrame({"y": y + 0.1 * rng.standard_normal(n), "x": x})


@pytest.fixture(scope="module")
def adaptable(tmp_path_factory):
    folder = tmp_path_factory.mktemp("adaptable")
    frame = _series()
    config = {
        "seed": 0,
        "data": {"targets": ["y"], "lookback": 6},
        "model": {"units": [8]},
        "training": {"epochs": 4, "cv_splits": 2},
    }
    bundle = fit(config, frame, verbose=0)
    report = export_adaptable(bundle, folder / "adaptable.tflite")
    return bundle, folder / "adaptable.tflite", report, frame


def _heads(bundle):
    """The Keras layers the file adapts: the core's output Dense and the linear path's."""
    layer = bundle.model.layers[0]
    output = [a for a in layer.core.layers if type(a).__name__ == "Dense"][-1]
    linear = [a for a in layer.highway.layers if type(a).__name__ == "Dense"][-1]
    return [output.kernel, output.bias, linear.kernel, linear.bias]


def test_adaptable_file_has_builtin_ops_and_its_signatures(adaptable):
    bundle, path, report, frame = adaptable
    assert report["builtin_only"] and not any(op.startswith("CUSTOM") for op in report["ops"])
    assert report["relative_rmse"] < 1e-5
    saved = json.loads(path.with_name(path.name + ".json").read_text())
    settings = saved["adaptation"]
    assert settings["layers"] == [
        "output/kernel",
        "output/bias",
        "linear_path/kernel",
        "linear_path/bias",
    ]
    sizes = [int(np.prod(v.shape)) for v in _heads(bundle)]
    assert settings["state_size"] == sum(sizes)
    assert settings["microcontrollers"].startswith("not supported")
    assert saved["runtime"] == "litert"
    predictor = LitePredictor(path)
    np.testing.assert_allclose(
        predictor.predict(frame).to_numpy(), bundle.predict(frame).to_numpy(), atol=1e-4
    )


def _keras_loss(bundle, windows, targets) -> float:
    out = np.asarray(bundle.model(windows, training=False), dtype=np.float64)
    return float(np.mean(np.square(out - targets)))


def _keras_gradients(bundle, variables, windows, targets, step=1e-2) -> list:
    """The mean squared error's gradient for each weight, by central differences of Keras'
    own forward pass (on any backend). The forecast is linear in these weights (the window's
    spread maps both heads back linearly), so the loss is quadratic in each: exact but for
    rounding."""
    grads = []
    for variable in variables:
        value = np.asarray(variable).astype(np.float32)
        grad = np.zeros(value.size)
        for i in range(value.size):
            losses = []
            for sign in (1, -1):
                moved = value.ravel().copy()
                moved[i] += sign * step
                variable.assign(moved.reshape(value.shape))
                losses.append(_keras_loss(bundle, windows, targets))
            grad[i] = (losses[0] - losses[1]) / (2 * step)
        variable.assign(value)
        grads.append(grad.reshape(value.shape))
    return grads


def test_one_train_step_equals_a_keras_gradient_step(adaptable):
    """The `train` signature's weights after one step equal SGD on the mean squared error of
    the same batch, computed with Keras' own model (its gradients by central differences)."""
    bundle, path, report, frame = adaptable
    predictor = LitePredictor(path)
    windows, targets = predictor.training_pairs(_series(seed=1, gain=-1.0))
    windows, targets = windows[:ADAPT_BATCH], targets[:ADAPT_BATCH]
    variables = _heads(bundle)
    loss = _keras_loss(bundle, windows, targets)
    grads = _keras_gradients(bundle, variables, windows, targets)
    lr = report["adaptation"]["learning_rate"]
    steps = zip(variables, grads, strict=True)
    expected = np.concatenate([(np.asarray(v) - lr * np.asarray(g)).ravel() for v, g in steps])
    predictor.interpreter.reset_all_variables()
    out = predictor.interpreter.get_signature_runner("train")(windows=windows, targets=targets)
    assert float(out["loss"]) == pytest.approx(float(loss), rel=1e-5)
    np.testing.assert_allclose(predictor.state(), expected, atol=1e-5)


def _rmse(predictor, frame) -> float:
    """The one-step forecasts' RMSE on `frame` in real units (the last row forecasts past it)."""
    forecasts = predictor.predict_array(frame)[:-1, 0, 0]
    return float(np.sqrt(np.mean((forecasts - frame["y"].to_numpy()[6:]) ** 2)))


def test_save_restore_and_reset(adaptable, tmp_path):
    bundle, path, report, frame = adaptable
    predictor = LitePredictor(path)
    shipped = predictor.predict_array(frame)
    shipped_state = predictor.state()
    new = _series(seed=2, gain=-1.0)
    unseen = _series(seed=7, gain=-1.0)  # more of the new regime, never adapted on
    before = _rmse(predictor, unseen)
    losses = predictor.adapt(new, epochs=3)
    assert len(losses) == 3 * ((len(new) - 6 - 1 + 1) // ADAPT_BATCH)
    per_epoch = np.reshape(losses, (3, -1)).mean(axis=1)
    assert per_epoch[-1] < per_epoch[0]  # it learns the new gain
    assert _rmse(predictor, unseen) < 0.95 * before  # and forecasts the new regime better
    adapted = predictor.predict_array(frame)
    assert np.abs(adapted - shipped).max() > 0.1
    state = predictor.save_state(tmp_path / "state.npy")
    predictor.reset_weights()
    np.testing.assert_array_equal(predictor.predict_array(frame), shipped)  # exactly
    np.testing.assert_array_equal(predictor.state(), shipped_state)
    again = LitePredictor(path)  # a fresh interpreter, as after a reboot
    again.load_state(state)
    np.testing.assert_allclose(again.predict_array(frame), adapted, atol=1e-6)
    np.save(tmp_path / "bad.npy", np.zeros(3, np.float32))
    with pytest.raises(DataError, match="saved from the same export"):
        again.load_state(tmp_path / "bad.npy")


def test_adapting_changes_only_the_output_layer_and_linear_path(adaptable):
    """After adapting, the file forecasts what the bundle's Keras model forecasts with its
    own LSTM weights and the adapted output and linear-path weights: nothing else moved."""
    bundle, path, report, frame = adaptable
    predictor = LitePredictor(path)
    predictor.adapt(_series(seed=3, gain=-1.0), epochs=2)
    state = predictor.state()
    variables = _heads(bundle)
    before = [np.asarray(v) for v in variables]
    try:
        offset = 0
        for variable in variables:
            size = int(np.prod(variable.shape))
            variable.assign(state[offset : offset + size].reshape(variable.shape))
            offset += size
        expected = bundle.predict(frame).to_numpy()
    finally:
        for variable, value in zip(variables, before, strict=True):
            variable.assign(value)
    np.testing.assert_allclose(predictor.predict(frame).to_numpy(), expected, atol=1e-4)


def test_the_bound_holds_however_large_the_steps(adaptable, tmp_path):
    bundle, _, _, frame = adaptable
    path = tmp_path / "wild.tflite"
    report = export_adaptable(bundle, path, learning_rate=1e3, max_change=0.5)
    predictor = LitePredictor(path)
    shipped = predictor.state()
    predictor.adapt(_series(seed=4, gain=-3.0), epochs=1)
    change = np.abs(predictor.state() - shipped)
    bounds = np.repeat(
        report["adaptation"]["bounds"],
        [int(np.prod(shape)) for shape in report["adaptation"]["shapes"]],
    )
    assert np.all(change <= bounds + 1e-6) and np.any(change > 0.9 * bounds)


def test_models_that_cannot_adapt_are_refused(adaptable, tmp_path):
    bundle, path, _, frame = adaptable
    standard = fit(
        {
            "seed": 0,
            "data": {"targets": ["y"], "lookback": 6, "scaler": "standard"},
            "model": {"units": [4], "linear_path": False},
            "training": {"epochs": 1, "cv_splits": 2},
        },
        frame,
        verbose=0,
    )
    with pytest.raises(ExportError, match="window-normalized"):
        export_adaptable(standard, tmp_path / "no.tflite")
    assert not (tmp_path / "no.tflite").exists()
    with pytest.raises(ExportError, match="learning rate"):
        export_adaptable(bundle, tmp_path / "no.tflite", learning_rate=-1)
    from tflite_export import export

    export(bundle, "float32", tmp_path / "plain.tflite")
    with pytest.raises(BundleError, match="--adaptable"):
        LitePredictor(tmp_path / "plain.tflite").adapt(frame)
    with pytest.raises(DataError, match="at least one batch"):
        LitePredictor(path).adapt(frame.iloc[:20])

"""Tests of `tflite_export`: builtin-only conversion, parity, quantization modes, the predictor."""

import json

import numpy as np
import pandas as pd
import pytest

from keras_lstm.config import ModelConfig
from keras_lstm.errors import BundleError, DataError, ExportError
from keras_lstm.factory import build_model
from tflite_export import LitePredictor, export
from tflite_export.runtime import report_path

LOOKBACK, FEATURES = 12, 3
MODES = ("float32", "float16", "dynamic", "int8", "int8-full")

# name -> (model config, output shape, task, fused LSTM ops expected)
CONFIGS = {
    "lstm": (ModelConfig(units=(8, 4)), (1, 1), "regression", 2),
    "gru": (ModelConfig(cell="gru", units=(8, 4)), (2, 2), "regression", 0),
    "bidirectional-conv-dense": (
        ModelConfig(units=(6, 4), bidirectional=True, conv_filters=4, dense_units=(5,)),
        3,
        "classification",
        4,
    ),
    "lstm-sigmoid": (ModelConfig(units=(8, 8), l2=0.0, dropout=0.0), 2, "classification", 2),
    "gru-bidirectional-sum": (
        ModelConfig(cell="gru", units=(6,), bidirectional=True, merge_mode="sum"),
        (1, 2),
        "regression",
        0,
    ),
}


def _windows(n, seed=0):
    return np.random.default_rng(seed).standard_normal((n, LOOKBACK, FEATURES)).astype(np.float32)


def _model(name, seed=0):
    import keras

    keras.utils.set_random_seed(seed)
    config, output_shape, task, _ = CONFIGS[name]
    return build_model(config, (LOOKBACK, FEATURES), output_shape, task)


def _run_file(path, windows):
    """Run a .tflite file window by window with a fresh reset, independently of the package."""
    from ai_edge_litert.interpreter import Interpreter

    lite = Interpreter(model_path=str(path))
    lite.allocate_tensors()
    source, target = lite.get_input_details()[0], lite.get_output_details()[0]
    outputs = []
    for window in windows:
        lite.reset_all_variables()
        value = window[None]
        if source["dtype"] == np.int8:
            scale, zero = source["quantization"]
            value = np.clip(np.round(value / scale) + zero, -128, 127).astype(np.int8)
        lite.set_tensor(source["index"], value)
        lite.invoke()
        out = lite.get_tensor(target["index"])[0]
        if target["dtype"] == np.int8:
            scale, zero = target["quantization"]
            out = (out.astype(np.float32) - zero) * scale
        outputs.append(out)
    return np.stack(outputs)


@pytest.fixture(scope="module")
def exports(tmp_path_factory):
    """Every config exported in every mode, once: name -> mode -> (path, report, model)."""
    folder = tmp_path_factory.mktemp("exports")
    cache = {}

    def get(name, mode):
        key = (name, mode)
        if key not in cache:
            model = cache.setdefault((name, "model"), _model(name))
            path = folder / f"{name}-{mode}.tflite"
            report = export(model, mode, path, _windows(64), max_error=10.0)
            cache[key] = (path, report, model)
        return cache[key]

    return get


@pytest.mark.parametrize("name", list(CONFIGS))
def test_float32_is_builtin_fused_and_exact(exports, name):
    path, report, model = exports(name, "float32")
    fused = CONFIGS[name][3]
    assert report["builtin_only"] is True
    assert report["runtime"] == "litert"  # int16x8 files say tflite-micro
    assert not any(op.startswith("CUSTOM") or "FLEX" in op for op in report["ops"])
    assert report["ops"].get("UNIDIRECTIONAL_SEQUENCE_LSTM", 0) == fused
    config = CONFIGS[name][0]
    directions = 2 if config.bidirectional else 1
    loops = len(config.units) * directions if config.cell == "gru" else 0
    assert report["ops"].get("WHILE", 0) == loops  # one loop per GRU direction, none for LSTMs
    assert report["max_abs_error"] <= 1e-4
    # Independent check on fresh windows the export never saw.
    windows = _windows(20, seed=7)
    expected = np.asarray(model(windows, training=False))
    np.testing.assert_allclose(_run_file(path, windows), expected, atol=1e-4)


@pytest.mark.parametrize("mode", MODES[1:])
@pytest.mark.parametrize("name", ["lstm", "gru", "bidirectional-conv-dense"])
def test_quantized_modes(exports, name, mode):
    path, report, model = exports(name, mode)
    assert path.is_file() and report_path(path).is_file()
    assert report["builtin_only"] is True
    assert report["mode"] == mode
    assert report["size_bytes"] == path.stat().st_size
    assert report["ops"].get("UNIDIRECTIONAL_SEQUENCE_LSTM", 0) == CONFIGS[name][3]
    on_disk = json.loads(report_path(path).read_text())
    for key in (
        "mode",
        "size_bytes",
        "ops",
        "builtin_only",
        "max_abs_error",
        "relative_rmse",
        "latency_ms_p50",
        "keras_latency_ms_p50",
        "recipe",
    ):
        assert key in on_disk, key
    if mode == "float16":
        assert report["max_abs_error"] <= 1e-2
    if mode == "dynamic":
        assert report["max_abs_error"] <= 5e-2
    expected_io = "int8" if mode == "int8-full" else "float32"
    assert report["input"]["dtype"] == expected_io
    assert report["output"]["dtype"] == expected_io
    if mode == "int8-full":
        assert report["input"]["scale"] > 0 and report["output"]["scale"] > 0
    # The file alone reproduces the reported error (int8 I/O quantized by hand).
    windows = _windows(64)
    got = _run_file(path, windows)
    expected = np.asarray(model(windows, training=False))
    assert np.max(np.abs(got - expected)) == pytest.approx(report["max_abs_error"], rel=1e-3)


def test_size_ordering_across_modes():
    import keras

    from tflite_export.convert import convert
    from tflite_export.forward import build_forward

    keras.utils.set_random_seed(1)
    model = build_model(ModelConfig(units=(48, 48)), (LOOKBACK, FEATURES), (1, 1), "regression")
    forward, _ = build_forward(model)
    # The first recipe of each mode (for int8: the integer LSTM kernel); `export` may fall back
    # to a float-LSTM recipe when that is more accurate, trading size for error.
    sizes = {mode: len(convert(forward, mode, _windows(32))[0]) for mode in MODES}
    # Dynamic range skips weight tensors under 1024 elements (the first LSTM's input weights
    # here), so only the second LSTM is quantized.
    assert sizes["float32"] > sizes["dynamic"] > sizes["int8"]
    assert sizes["float32"] > sizes["float16"] > sizes["int8"]
    assert sizes["float16"] < 0.6 * sizes["float32"]
    assert sizes["int8"] < 0.35 * sizes["float32"]
    assert abs(sizes["int8-full"] - sizes["int8"]) < 0.05 * sizes["int8"]


def test_trained_int8_full_is_close_to_keras(tmp_path):
    """On a (briefly) trained model the integer file tracks Keras closely."""
    import keras

    keras.utils.set_random_seed(3)
    t = np.arange(600, dtype=np.float32)
    series = np.stack([np.sin(t / 6), np.cos(t / 9), np.sin(t / 4) * 0.5], axis=1)
    windows = np.lib.stride_tricks.sliding_window_view(series, LOOKBACK, axis=0)
    windows = np.ascontiguousarray(windows.transpose(0, 2, 1)[:-1])
    targets = series[LOOKBACK:, :1][:, None]
    model = build_model(ModelConfig(units=(16,), dropout=0.0, l2=0.0), (LOOKBACK, FEATURES), (1, 1))
    model.fit(windows[:450], targets[:450], epochs=4, batch_size=32, verbose=0)
    report = export(
        model, "int8-full", tmp_path / "m.tflite", windows[:450], validation=windows[450:]
    )
    assert report["relative_rmse"] < 0.05
    assert report["input"]["dtype"] == "int8"


def test_failed_parity_check_writes_no_file(tmp_path):
    model = _model("lstm")
    folder = tmp_path / "sub"
    folder.mkdir()
    (folder / "other.txt").write_text("kept")
    out = folder / "model.tflite"
    with pytest.raises(ExportError, match="Parity check failed"):
        export(model, "int8", out, _windows(16), max_error=0.0)
    assert not out.exists()
    assert not report_path(out).exists()
    # No model, report or temporary file (`.model.tflite.*.tmp`) is left; the rest is untouched.
    assert sorted(path.name for path in folder.iterdir()) == ["other.txt"]


def test_bad_mode_and_missing_windows(tmp_path):
    model = _model("lstm")
    with pytest.raises(ExportError, match="mode"):
        export(model, "int4", tmp_path / "m.tflite", _windows(4))
    with pytest.raises(ExportError, match="representative"):
        export(model, "float32", tmp_path / "m.tflite")
    with pytest.raises(ExportError, match="Bundle or a Keras model"):
        export(object(), "float32", tmp_path / "m.tflite", _windows(4))
    assert not list(tmp_path.iterdir())


def test_unsupported_layer_is_refused(tmp_path):
    import keras

    model = keras.Sequential(
        [keras.Input((LOOKBACK, FEATURES)), keras.layers.SimpleRNN(4), keras.layers.Dense(1)]
    )
    with pytest.raises(ExportError, match="SimpleRNN"):
        export(model, "float32", tmp_path / "m.tflite", _windows(4))
    assert not list(tmp_path.iterdir())


def test_variable_time_model_needs_lookback(tmp_path):
    import keras

    keras.utils.set_random_seed(0)
    model = build_model(ModelConfig(units=(4,)), (None, FEATURES), (1, 1), "regression")
    with pytest.raises(ExportError, match="lookback"):
        export(model, "float32", tmp_path / "m.tflite", _windows(4))
    report = export(model, "float32", tmp_path / "m.tflite", _windows(8), lookback=LOOKBACK)
    assert report["input"]["shape"] == [1, LOOKBACK, FEATURES]


class FakeBundle:
    """The duck-typed Bundle interface `export` relies on."""

    def __init__(self, model, preprocessing, windows):
        self.model = model
        self.preprocessing = preprocessing
        self.config = None
        self.windows = windows

    def sample_windows(self, n, part="train"):
        return self.windows[:n]


def _bundle(name, frame):
    feature_scaler = {"kind": "standard", "center": [1.0, -2.0, 0.5], "scale": [2.0, 4.0, 0.5]}
    preprocessing = {
        "task": CONFIGS[name][2],
        "feature_names": ["a", "b", "c"],
        "target_names": ["a"] if CONFIGS[name][2] == "regression" else ["label"],
        "lookback": LOOKBACK,
        "horizon": 1,
        "feature_scaler": feature_scaler,
        "target_scaler": {"kind": "standard", "center": [10.0], "scale": [3.0]},
        "classes": ["no", "yes"],
        "other_columns": ["extra"],  # in the training table, not a feature (as a bundle says)
    }
    scaled = (frame[["a", "b", "c"]].to_numpy() - feature_scaler["center"]) / np.array(
        feature_scaler["scale"]
    )
    windows = np.lib.stride_tricks.sliding_window_view(scaled, LOOKBACK, axis=0)
    windows = windows.transpose(0, 2, 1).astype(np.float32)
    return FakeBundle(_model(name), preprocessing, windows), windows


@pytest.fixture
def raw_frame():
    rng = np.random.default_rng(5)
    return pd.DataFrame(
        {
            "c": 0.5 + 0.5 * rng.standard_normal(40),
            "a": 1.0 + 2.0 * rng.standard_normal(40),
            "b": -2.0 + 4.0 * rng.standard_normal(40),
            "extra": np.arange(40),
        }
    )


@pytest.mark.parametrize("mode", ["float32", "int8-full"])
def test_lite_predictor_real_units(tmp_path, raw_frame, mode):
    bundle, windows = _bundle("lstm", raw_frame)
    report = export(bundle, mode, tmp_path / "m.tflite", max_error=10.0)
    assert report["preprocessing"]["feature_names"] == ["a", "b", "c"]
    predictor = LitePredictor(tmp_path / "m.tflite")
    got = predictor.predict_array(raw_frame)
    # By hand: scale -> Keras -> unscale, for each of the 29 complete windows.
    expected = np.asarray(bundle.model(windows, training=False)) * 3.0 + 10.0
    assert got.shape == (40 - LOOKBACK + 1, 1, 1)
    # The parity check ran on these same windows: real units scale its error by 3.
    tolerance = 3.0 * max(report["max_abs_error"], 1e-5) * 1.01
    np.testing.assert_allclose(got, expected, atol=tolerance)
    # The same rows as an array in feature order give the same answer.
    np.testing.assert_allclose(predictor.predict_array(raw_frame[["a", "b", "c"]].to_numpy()), got)


def test_lite_predictor_classification_and_errors(tmp_path, raw_frame):
    bundle, windows = _bundle("lstm-sigmoid", raw_frame)
    export(bundle, "float32", tmp_path / "m.tflite")
    predictor = LitePredictor(tmp_path / "m.tflite")
    probabilities = predictor.predict_array(raw_frame)
    p = np.asarray(bundle.model(windows, training=False))
    np.testing.assert_allclose(probabilities, np.concatenate([1 - p, p], 1), atol=1e-5)
    assert set(predictor.predict_labels(raw_frame)) <= {"no", "yes"}
    with pytest.raises(DataError, match="Feature column .b., used in training, is missing"):
        predictor.predict(raw_frame.drop(columns="b"))
    with pytest.raises(DataError, match="lookback"):
        predictor.predict(raw_frame.iloc[:5])
    (tmp_path / "m.tflite.json").unlink()
    with pytest.raises(BundleError, match="report"):
        LitePredictor(tmp_path / "m.tflite")


def test_gru_loop_makes_int8_smaller_than_float32_and_int8_full_all_integer(tmp_path):
    """A GRU is one WHILE loop holding one step: its int8 file is smaller than its float32 one
    (unrolled, every step's ops carried their own quantization parameters: 1.5x float32), and
    both are far smaller than the unrolled float32 file. `int8-full` unrolls instead, so that
    nothing stays float (the loop's state crosses the WHILE boundary in float32)."""
    import keras

    from tflite_export.convert import convert
    from tflite_export.forward import build_forward

    keras.utils.set_random_seed(0)
    model = build_model(ModelConfig(cell="gru", units=(32, 16)), (24, 4), (1, 1), "regression")
    windows = np.random.default_rng(0).standard_normal((64, 24, 4)).astype(np.float32)
    sizes = {
        mode: export(model, mode, tmp_path / f"{mode}.tflite", windows, max_error=10.0)
        for mode in ("float32", "int8", "int8-full")
    }
    unrolled, _ = convert(build_forward(model, gru_loop=False)[0], "float32")
    assert sizes["float32"]["ops"]["WHILE"] == 2
    assert sizes["int8"]["size_bytes"] < sizes["float32"]["size_bytes"]
    assert sizes["float32"]["size_bytes"] < len(unrolled) / 2
    assert "WHILE" not in sizes["int8-full"]["ops"]
    # (TF's quantizer sometimes leaves one SPLIT of the unrolled GRU float: BENCHMARKS.md)
    assert sizes["int8-full"]["kept_float"]["float_weights_share"] == 0.0
    assert sizes["int8"]["kept_float"]["ops"] == {"WHILE": 2}
    expected = np.asarray(model(windows[:16], training=False)).reshape(16, -1)
    errors = {}
    for mode in ("float32", "int8", "int8-full"):
        got = _run_file(tmp_path / f"{mode}.tflite", windows[:16]).reshape(16, -1)
        errors[mode] = np.sqrt(np.mean((got - expected) ** 2))
        bar = 1e-4 if mode == "float32" else 0.1 * np.std(expected)
        assert errors[mode] <= bar, mode
    # TFLite Micro runs the loop too (it registers WHILE), about as close to Keras as LiteRT
    # (its reference kernels round differently).
    from tflite_export.requantize import run_micro

    micro = run_micro((tmp_path / "int8.tflite").read_bytes(), windows[:16]).reshape(16, -1)
    assert np.sqrt(np.mean((micro - expected) ** 2)) <= 1.5 * errors["int8"]


def test_integer_modes_report_the_recipe_tried(exports):
    _, report, _ = exports("bidirectional-conv-dense", "int8-full")
    tried = [entry["recipe"] for entry in report["recipes_tried"]]
    assert tried[0] == "integer-lstm"
    assert report["recipe"].split(":")[0] in tried
    chosen = min(report["recipes_tried"], key=lambda entry: entry["relative_rmse"])
    if report["recipes_tried"][0]["relative_rmse"] > 0.02:
        assert report["recipe"].startswith(chosen["recipe"])
    # the latency note is there exactly when an LSTM runs on the integer kernel
    integer_lstms = report["ops"].get("UNIDIRECTIONAL_SEQUENCE_LSTM", 0) - report["kept_float"][
        "ops"
    ].get("UNIDIRECTIONAL_SEQUENCE_LSTM", 0)
    assert ("latency_note" in report) == (integer_lstms > 0)
    # A GRU model has no fused LSTM to keep in float: one recipe only, and no LSTM kernel note.
    _, report, _ = exports("gru", "int8")
    assert [entry["recipe"] for entry in report["recipes_tried"]] == ["integer-lstm"]
    assert "latency_note" not in report
    _, report, _ = exports("lstm", "int8")
    assert "integer LSTM kernel" in report["latency_note"]
    _, report, _ = exports("lstm", "float32")
    assert "latency_note" not in report


def test_embedding_front(tmp_path):
    import keras

    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [
            keras.Input((LOOKBACK,)),
            keras.layers.Embedding(20, 4),
            keras.layers.LSTM(8),
            keras.layers.Dense(3, activation="softmax"),
        ]
    )
    tokens = np.random.default_rng(0).integers(0, 20, (32, LOOKBACK)).astype(np.float32)
    report = export(model, "float32", tmp_path / "m.tflite", tokens)
    assert report["input"]["dtype"] == "int32"
    assert report["ops"]["GATHER"] == 1 and report["ops"]["UNIDIRECTIONAL_SEQUENCE_LSTM"] == 1
    assert report["max_abs_error"] <= 1e-4
    masked = keras.Sequential(
        [keras.Input((LOOKBACK,)), keras.layers.Embedding(20, 4, mask_zero=True), *model.layers[1:]]
    )
    with pytest.raises(ExportError, match="mask_zero"):
        export(masked, "float32", tmp_path / "masked.tflite", tokens)


def test_trained_bidirectional_conv_model_exports_in_int8(tmp_path):
    """The model of the int8 report: Conv1D(16) -> BiLSTM(64) -> BiLSTM(48) -> Dense(16) ->
    Dense(1), lookback 32, three features, 5 epochs. Where the integer LSTM kernel misses the
    bar, the export keeps the fewest LSTMs in float and says which. Whether any recipe meets
    the bar depends on the trained weights (on JAX this model's int8 input, output and dense
    layers alone give 0.0208 with every LSTM in float): where none does, the most accurate
    attempt is kept."""
    import keras

    from tflite_export.convert import INTEGER_TARGET
    from tflite_export.exporter import DEFAULT_MAX_ERROR

    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    t = np.arange(700)
    series = np.stack(
        [
            np.sin(t / 7) + 0.1 * rng.standard_normal(700),
            np.cos(t / 11),
            0.3 * rng.standard_normal(700),
        ],
        axis=1,
    ).astype(np.float32)
    x = np.lib.stride_tricks.sliding_window_view(series[:-1], 32, axis=0).transpose(0, 2, 1)
    x = np.ascontiguousarray(x)
    y = series[32:, :1][:, None, :]
    config = ModelConfig(units=(64, 48), bidirectional=True, conv_filters=16, dense_units=(16,))
    model = build_model(config, (32, 3), (1, 1), "regression")
    model.compile("adam", "mse")
    model.fit(x, y, epochs=5, batch_size=32, verbose=0)
    # int8-full: int8 input and output too (`int8` shares the recipes, with float I/O)
    report = export(model, "int8-full", tmp_path / "m.tflite", x[:400], validation=x[-200:])
    attempts = report["recipes_tried"]
    errors = [entry["relative_rmse"] for entry in attempts]
    # the search stops at the first attempt that meets the bar, the all-integer one first
    assert attempts[0]["recipe"] == "integer-lstm" and not attempts[0]["float_lstms"]
    assert all(error > INTEGER_TARGET for error in errors[:-1])
    if report["relative_rmse"] <= INTEGER_TARGET:
        assert errors[-1] == report["relative_rmse"]
    else:  # no recipe meets it: the most accurate, every LSTM in float
        assert report["relative_rmse"] == min(errors) and attempts[-1]["recipe"] == "float-lstm"
    assert report["relative_rmse"] < errors[0] <= DEFAULT_MAX_ERROR["int8-full"]
    floats = report["kept_float"]["ops"].get("UNIDIRECTIONAL_SEQUENCE_LSTM", 0)
    if attempts[-1]["recipe"] == "float-lstm":
        assert floats == 4
    else:  # the fewest LSTMs in float: the file says which, and it is smaller than float32
        assert floats == len(attempts[-1]["float_lstms"]) < 4
        float32 = export(model, "float32", tmp_path / "f.tflite", x[:400], validation=x[-200:])
        assert report["size_bytes"] < float32["size_bytes"]


def test_masked_bidirectional_int8_keeps_only_reverse_sequence_float(tmp_path):
    """LiteRT has no int8 REVERSE_SEQUENCE (a masked backward direction): the integer recipe
    keeps that op in float and still runs; before, no int8 file could be made at all."""
    import keras

    keras.utils.set_random_seed(0)
    model = build_model(
        ModelConfig(units=(8,), bidirectional=True, linear_path=False),
        (None, FEATURES),
        3,
        "classification",
        mask_value=0.0,
    )
    windows = _windows(64)
    windows[::2, 8:] = 0.0  # half the sequences padded at the end
    report = export(
        model, "int8-full", tmp_path / "m.tflite", windows, max_error=1.0, lookback=LOOKBACK
    )
    tried = [r["recipe"] for r in report["recipes_tried"]]
    assert tried[0] == "integer-lstm"  # runnable now: it was refused at allocate_tensors
    assert "REVERSE_SEQUENCE" in report["ops"]
    assert "REVERSE_SEQUENCE" in report["kept_float"]["ops"]
    assert report["input"]["dtype"] == "int8"


def _ranges(content):
    """(min, max) of every calibrated tensor of a calibrate-only model, by tensor name."""
    from tensorflow.lite.python import schema_py_generated as schema

    graph = schema.ModelT.InitFromObj(schema.Model.GetRootAs(content, 0)).subgraphs[0]
    return {
        t.name.decode(): (np.asarray(t.quantization.min), np.asarray(t.quantization.max))
        for t in graph.tensors
        if t.quantization is not None and t.quantization.min is not None
    }


def test_widen_ranges_widens_every_calibrated_range_by_the_margin():
    from tflite_export.convert import calibrate, widen_ranges
    from tflite_export.forward import build_forward

    forward, _ = build_forward(_model("lstm"))
    exact = calibrate(forward, _windows(32), margin=0.0)
    wide = calibrate(forward, _windows(32), margin=0.25)
    before, after = _ranges(exact.content), _ranges(wide.content)
    assert before and before.keys() == after.keys()
    for name, (low, high) in before.items():
        span = high - low
        np.testing.assert_allclose(after[name][0], low - 0.25 * span, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(after[name][1], high + 0.25 * span, rtol=1e-5, atol=1e-6)
    assert widen_ranges(exact.content, 0.0) == exact.content
    with pytest.raises(ExportError, match="margin"):
        widen_ranges(exact.content, -0.1)


def test_calibration_margin_keeps_outputs_beyond_the_calibration_range(tmp_path):
    """Windows larger than every calibration window drive the output past its calibrated
    range: with no margin the int8 output is clipped at that range's edge (checked against
    Keras on the calibration windows), with a margin it follows Keras further."""
    model = _model("lstm")
    calibration = _windows(200)
    beyond = 2.5 * _windows(64, seed=5)
    reports, outputs = {}, {}
    for margin in (0.0, 0.3):
        path = tmp_path / f"m{margin}.tflite"
        reports[margin] = export(
            model,
            "int8",
            path,
            calibration,
            validation=beyond,
            calibration_margin=margin,
            max_error=10.0,
        )
        outputs[margin] = _run_file(path, beyond).ravel()
    assert reports[0.0]["calibration_margin"] == 0.0 and reports[0.3]["calibration_margin"] == 0.3
    calibrated_top = np.asarray(model(calibration, training=False)).max()
    keras = np.asarray(model(beyond, training=False))
    spread = np.std(keras)
    assert keras.max() > calibrated_top + 0.5 * spread  # the windows do leave the range
    assert outputs[0.0].max() < calibrated_top + 0.15 * spread  # clipped near its edge
    assert outputs[0.3].max() > keras.max() - 0.05 * spread  # follows Keras to the top
    assert reports[0.3]["relative_rmse"] < 0.5 * reports[0.0]["relative_rmse"]
    with pytest.raises(ExportError, match="calibration_margin"):
        export(model, "int8", tmp_path / "bad.tflite", calibration, calibration_margin=-1)


def test_calibration_margin_of_a_bundle_config_is_used(tmp_path):
    import types

    model = _model("lstm")
    windows = _windows(64)
    bundle = types.SimpleNamespace(
        model=model,
        preprocessing={},
        config=types.SimpleNamespace(export=types.SimpleNamespace(calibration_margin=0.0)),
        sample_windows=lambda n, part="train": windows[:n],
    )
    report = export(bundle, "int8", tmp_path / "m.tflite", max_error=10.0)
    assert report["calibration_margin"] == 0.0
    assert export(model, "int8", tmp_path / "d.tflite", windows, max_error=10.0)[
        "calibration_margin"
    ] == pytest.approx(0.1)


def _fake_parity(monkeypatch, error):
    """Replace each attempt's measured parity by `error(float LSTM tensors of its file)`; the
    files are still converted and inspected for real."""
    import dataclasses

    from tflite_export import exporter
    from tflite_export.ops import float_ops

    real = exporter._attempt

    def attempt(name, content, *args, **kwargs):
        result = real(name, content, *args, **kwargs)
        kept = {t for t in float_ops(content)["tensors"] if "lstm" in t}
        return dataclasses.replace(result, relative_rmse=error(kept))

    monkeypatch.setattr(exporter, "_attempt", attempt)


def test_search_keeps_the_fewest_lstms_in_float(tmp_path, monkeypatch):
    """Greedy, one more LSTM each round: here the second and third LSTMs together meet the
    target, so the first stays integer; the file and report say which stayed float."""
    import keras

    from tflite_export.convert import calibrate
    from tflite_export.forward import build_forward

    keras.utils.set_random_seed(0)
    model = build_model(ModelConfig(units=(8, 8, 4)), (LOOKBACK, FEATURES), (1, 1), "regression")
    first, second, third = calibrate(build_forward(model)[0], _windows(16)).lstm_nodes
    gain = {first: 0.001, second: 0.02, third: 0.015}
    _fake_parity(monkeypatch, lambda kept: 0.05 - sum(gain[name] for name in kept))
    report = export(model, "int8", tmp_path / "m.tflite", _windows(64), max_error=1.0)
    tried = [(r["recipe"], sorted(r["float_lstms"])) for r in report["recipes_tried"]]
    assert tried[0] == ("integer-lstm", [])
    assert [t[1] for t in tried[1:4]] == [[first], [second], [third]]
    assert sorted(t[1] for t in tried[4:]) == sorted(
        [sorted([first, second]), sorted([second, third])]
    )
    assert report["relative_rmse"] == pytest.approx(0.015)
    assert report["kept_float"]["ops"].get("UNIDIRECTIONAL_SEQUENCE_LSTM") == 2
    assert sorted(report["recipes_tried"][-1]["float_lstms"]) == sorted([second, third])
    assert f"{second}, {third}" in report["recipe"] or f"{third}, {second}" in report["recipe"]


def test_search_falls_back_to_every_lstm_in_float_when_single_ones_do_not_help(
    tmp_path, monkeypatch
):
    model = _model("lstm")
    _fake_parity(monkeypatch, lambda kept: 0.01 if len(kept) == 2 else 0.05)
    report = export(model, "int8-full", tmp_path / "m.tflite", _windows(64), max_error=1.0)
    tried = [r["recipe"] for r in report["recipes_tried"]]
    # one LSTM at a time does not help, so no second round: straight to float-lstm
    assert tried == ["integer-lstm", "integer-lstm", "integer-lstm", "float-lstm"]
    assert report["recipe"].startswith("float-lstm")
    assert report["kept_float"]["ops"]["UNIDIRECTIONAL_SEQUENCE_LSTM"] == 2


def test_cli_calibration_margin_reaches_the_report(tmp_path, monkeypatch, capsys):
    import types

    from tflite_export.cli import run_export

    model, windows = _model("lstm"), _windows(64)
    bundle = types.SimpleNamespace(
        model=model,
        preprocessing={},
        config=types.SimpleNamespace(export=types.SimpleNamespace(calibration_margin=0.0)),
        sample_windows=lambda n, part="train": windows[:n],
        directory=tmp_path,
    )
    monkeypatch.setattr("keras_lstm.bundle.Bundle.load", staticmethod(lambda path: bundle))
    args = types.SimpleNamespace(
        bundle=str(tmp_path),
        quantize="int8",
        out=None,
        max_error=10.0,
        format="tflite",
        streaming=False,
        calibration_margin=0.25,
    )
    assert run_export(args) == 0
    printed = capsys.readouterr().out
    report = json.loads(report_path(tmp_path / "model-int8.tflite").read_text())
    assert report["calibration_margin"] == 0.25  # the flag wins over the bundle's config
    floats = ", ".join(f"{op} x{n}" for op, n in report["kept_float"]["ops"].items())
    assert f"kept in float32: {floats or 'nothing'} (" in printed
    assert "calibration margin 0.25" in printed


def test_trained_embedding_classifier_is_all_integer_within_the_bar(tmp_path):
    """An Embedding front (int32 token input) trained on a counting task: the all-integer
    recipe meets 0.02, LSTM included. (Untrained softmax outputs barely vary, so their relative
    RMSE says little: train first.)"""
    import keras

    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    tokens = rng.integers(0, 20, (2000, LOOKBACK)).astype(np.float32)
    labels = np.digitize((tokens < 7).sum(1), [3, 5])  # how many small tokens: 3 classes
    model = keras.Sequential(
        [
            keras.Input((LOOKBACK,)),
            keras.layers.Embedding(20, 4),
            keras.layers.LSTM(8),
            keras.layers.Dense(3, activation="softmax"),
        ]
    )
    model.compile("adam", "sparse_categorical_crossentropy")
    model.fit(tokens[:1500], labels[:1500], epochs=15, batch_size=32, verbose=0)
    report = export(
        model, "int8-full", tmp_path / "m.tflite", tokens[:1000], validation=tokens[1500:1756]
    )
    assert report["relative_rmse"] <= 0.02
    assert report["input"]["dtype"] == "int32" and report["output"]["dtype"] == "int8"
    assert report["kept_float"]["ops"] == {}  # the LSTM kernel too is integer
    predicted = _run_file(tmp_path / "m.tflite", tokens[1500:1756].astype(np.int32)).argmax(-1)
    expected = np.asarray(model(tokens[1500:1756], training=False)).argmax(-1)
    assert np.mean(predicted == expected) >= 0.97

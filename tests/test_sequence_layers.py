"""The mask-aware sequence layers: each checked against an independent NumPy computation, the
padded-batch rule, and their TFLite export."""

import numpy as np
import pandas as pd
import pytest

from keras_lstm.config import SEQUENCE_CLASSIFIER_MODEL, ModelConfig, load_config
from keras_lstm.data.sequences import pad
from keras_lstm.errors import ConfigError
from keras_lstm.factory import build_model, stack_layers
from keras_lstm.sequence_layers import (
    AttentionPooling,
    MaskedMaxPooling1D,
    SequenceStandardized,
)
from tflite_export.c_array import micro_support


def _masked(x):
    """Run `x` through Keras' Masking so the layers receive the padding mask."""
    import keras

    return keras.layers.Masking(0.0)(x)


def _sequences(lengths=(5, 17, 9, 14), features=2, seed=0):
    rng = np.random.default_rng(seed)
    return [rng.standard_normal((n, features)).astype(np.float32) + 1 for n in lengths]


def test_sequence_standardized_uses_only_valid_steps():
    sequences = _sequences()
    out = np.asarray(SequenceStandardized()(_masked(pad(sequences, 20))))
    for i, s in enumerate(sequences):
        expected = (s - s.mean(0)) / s.std(0)
        np.testing.assert_allclose(out[i, : len(s)], expected, rtol=1e-5, atol=1e-5)
        assert not out[i, len(s) :].any()


def test_a_channel_flat_within_a_sequence_is_exactly_zero_in_keras_and_tflite(tmp_path):
    """A channel constant within each sequence (a per-recording setting, a class code) has a
    spread of rounding error only: it gives zeros and log(floor), not that error divided by
    the floor, which differed between JAX, TensorFlow and the TFLite file (relative RMSE 3e-3
    on a trained classifier)."""
    import keras

    from tflite_export.forward import build_forward

    rng = np.random.default_rng(3)
    levels = rng.uniform(-3, 3, 40).astype(np.float32)
    lengths = rng.integers(5, 13, 40)
    wavy = [rng.standard_normal(n).astype(np.float32) for n in lengths]
    sequences = [np.stack([w, np.full(len(w), v)], 1) for w, v in zip(wavy, levels, strict=True)]
    # not vacuous: a float32 mean of many of these constants is not the constant itself
    means = [np.float32(np.sum(s[:, 1], dtype=np.float32) / len(s)) for s in sequences]
    assert any(m != s[0, 1] for m, s in zip(means, sequences, strict=True))
    layer = SequenceStandardized(scale_channels=True)
    batch = pad(sequences, 12)
    out = np.asarray(layer(_masked(batch)))
    assert not out[:, :, 1].any()  # exactly zero: no rounding error blown up by 1 / floor
    for i, n in enumerate(lengths):
        np.testing.assert_allclose(out[i, :n, 3], np.log(layer.floor), rtol=1e-6)  # its scale
        np.testing.assert_allclose(
            out[i, :n, 0], (wavy[i] - wavy[i].mean()) / wavy[i].std(), atol=1e-4
        )
    model = keras.Sequential([keras.Input((12, 2)), keras.layers.Masking(0.0), layer])
    forward, _ = build_forward(model, lookback=12)
    exported = np.concatenate(
        [np.asarray(forward(batch[i : i + 1])["prediction"]) for i in range(len(batch))]
    )
    assert not exported[:, :, 1].any()


def test_scale_channels_carry_the_log_spread_of_each_sequence():
    """Two sequences of one shape at scales 1e-3 and 50 give the same standardized channel and
    scale channels `log(std)`, so the model can tell them apart."""
    shape = np.sin(np.arange(12, dtype=np.float32))[:, None] + 2  # no step is all zero
    sequences = [shape * 1e-3, shape[:9] * 50 + 7]
    out = np.asarray(SequenceStandardized(scale_channels=True)(_masked(pad(sequences, 12))))
    assert out.shape == (2, 12, 2)
    for i, s in enumerate(sequences):
        n = len(s)
        np.testing.assert_allclose(out[i, :n, 0], ((s - s.mean()) / s.std())[:, 0], atol=1e-4)
        np.testing.assert_allclose(out[i, :n, 1], np.log(s.std()), rtol=1e-4)
        assert not out[i, n:].any()


def test_level_channels_carry_the_signed_log_level_of_each_sequence():
    """Two sequences of one shape at levels -40 and 0.5 (same spread) standardize to the same
    shape channel; the level channels, after the scale ones, are `sign(m) * log(1 + |m|)` of
    each sequence's mean, so the level that a per-sequence scaler removes is still there."""
    shape = np.sin(np.arange(10, dtype=np.float32))[:, None]
    sequences = [shape - 40.0, shape[:7] + 0.5]
    layer = SequenceStandardized(scale_channels=True, level_channels=True)
    out = np.asarray(layer(_masked(pad(sequences, 10))))
    assert out.shape == (2, 10, 3)
    for i, s in enumerate(sequences):
        n, mean = len(s), float(s.mean())
        np.testing.assert_allclose(out[i, :n, 0], ((s - mean) / s.std())[:, 0], atol=1e-4)
        np.testing.assert_allclose(out[i, :n, 1], np.log(s.std()), rtol=1e-4)
        np.testing.assert_allclose(out[i, :n, 2], np.sign(mean) * np.log1p(abs(mean)), rtol=1e-5)
        assert not out[i, n:].any()
    # a saved layer keeps the option
    restored = SequenceStandardized.from_config(layer.get_config())
    assert restored.level_channels and restored.scale_channels


def test_whole_sequences_are_standardized_per_sequence_by_default():
    from keras_lstm.training import prepare

    frame = pd.DataFrame(
        {"id": np.repeat(np.arange(12), 4), "x": np.arange(48.0), "y": np.repeat([0, 1], 24)}
    )
    raw = {"task": "classification", "data": {"series_id": "id", "label": "y"}}
    assert prepare(load_config(raw), frame).scaler == "sequence"
    raw["data"]["scaler"] = "standard"
    assert prepare(load_config(raw), frame).scaler == "standard"


def test_masked_max_pooling_ignores_padding_and_shrinks_the_mask():
    x = np.full((1, 7, 1), 0.0, np.float32)
    x[0, :5, 0] = [1, 4, 2, 0.5, 3]
    masked = _masked(x)
    layer = MaskedMaxPooling1D(3)
    out = np.asarray(layer(masked))
    np.testing.assert_array_equal(out[0, :, 0], [4, 3, 0])
    mask = np.asarray(layer.compute_mask(masked, masked._keras_mask))
    np.testing.assert_array_equal(mask[0], [True, True, False])  # valid runs start at 0 and 3


def test_attention_pooling_is_a_softmax_weighted_sum_over_valid_steps():
    sequences = _sequences(lengths=(4, 9), features=3)
    layer = AttentionPooling()
    out = np.asarray(layer(_masked(pad(sequences, 9))))
    w = np.asarray(layer.score)
    for i, s in enumerate(sequences):
        scores = s @ w
        weights = np.exp(scores - scores.max()) / np.exp(scores - scores.max()).sum()
        np.testing.assert_allclose(out[i], (weights * s).sum(0), rtol=1e-5)


FRONTS = [
    ModelConfig(units=(6,), conv_filters=(4, 4), conv_kernel_size=(5, 3), conv_pool=4),
    ModelConfig(
        units=(5, 4),
        conv_filters=(4,),
        batch_norm=True,
        conv_pool=2,
        pooling="attention",
        bidirectional=True,
    ),
    ModelConfig(units=(5,), conv_filters=(3, 3), batch_norm=True, pooling="mean"),
    ModelConfig(units=(4,), cell="gru", pooling="mean", bidirectional=True),
]
IDS = ["conv-pool-last", "bn-attention-bidirectional", "bn-mean", "gru-mean"]


@pytest.mark.parametrize("config", FRONTS, ids=IDS)
def test_padded_batch_predicts_like_each_sequence_and_exports(config, tmp_path):
    """Padding never changes a prediction, in Keras and in the float32 TFLite file."""
    import keras

    from tflite_export import export

    keras.utils.set_random_seed(0)
    model = build_model(
        config, (None, 2), 3, "classification", mask_value=0.0, sequence_standardized=True
    )
    for layer in stack_layers(model):  # non-trivial batch statistics
        if type(layer).__name__ == "BatchNormalization":
            rng = np.random.default_rng(1)
            layer.moving_mean.assign(rng.standard_normal(layer.moving_mean.shape))
            layer.moving_variance.assign(rng.uniform(0.5, 2, layer.moving_variance.shape))
    sequences = _sequences()
    batch = model.predict(pad(sequences, 20), verbose=0)
    single = np.concatenate([model.predict(s[None], verbose=0) for s in sequences])
    np.testing.assert_allclose(batch, single, atol=1e-5)
    report = export(model, "float32", tmp_path / "m.tflite", pad(sequences * 4, 20), lookback=20)
    assert report["builtin_only"] and report["max_abs_error"] < 1e-5
    # the per-sequence scaler (log spread and signed log level) needs no op TFLite Micro lacks
    missing = micro_support((tmp_path / "m.tflite").read_bytes()).missing
    assert "SIGN" not in missing and not {"LOG", "DIV", "ABS", "MAXIMUM"} & set(missing)


def test_conv_front_layers_and_pooling_in_order():
    config = ModelConfig(
        units=(6,), conv_filters=(4, 5), conv_kernel_size=7, batch_norm=True, conv_pool=4
    )
    model = build_model(config, (None, 2), 3, "classification", mask_value=0.0)
    names = [type(layer).__name__ for layer in stack_layers(model)]
    assert names == [
        "Masking",
        "MaskedConv1D",
        "BatchNormalization",
        "Activation",
        "MaskedConv1D",
        "BatchNormalization",
        "Activation",
        "MaskedMaxPooling1D",
        "LSTM",
        "Dropout",
        "Dense",
    ]
    convs = [layer for layer in stack_layers(model) if type(layer).__name__ == "MaskedConv1D"]
    assert [(c.filters, c.kernel_size[0]) for c in convs] == [(4, 7), (5, 7)]
    # without padding (windows of a series) the plain Keras layers are used
    series = build_model(config, (40, 2), (1, 1), "regression")
    assert "Conv1D" in [type(layer).__name__ for layer in stack_layers(series)]
    assert series.output_shape == (None, 1, 1)


@pytest.mark.parametrize(
    "section, message",
    [
        ({"conv_pool": 2}, "model.conv_pool"),
        ({"conv_filters": [4, 4], "conv_kernel_size": [3, 3, 3]}, "model.conv_kernel_size"),
        ({"pooling": "max"}, "model.pooling"),
        ({"conv_filters": [4, 0]}, r"model.conv_filters\[1\]"),
        ({"batch_norm": "yes"}, "model.batch_norm"),
        ({"conv_filters": [4], "conv_pool": "max"}, "model.conv_pool.*auto"),
        ({"conv_filters": [4], "conv_kernel_size": "big"}, "model.conv_kernel_size.*auto"),
    ],
)
def test_bad_front_settings_name_the_key(section, message):
    with pytest.raises(ConfigError, match=message):
        load_config({"model": section})


def test_old_single_conv_settings_still_load():
    config = load_config({"model": {"conv_filters": 8, "conv_kernel_size": 5}})
    assert config.model.conv_layers == ((8, 5),)
    assert load_config({"model": {"conv_filters": 0}}).model.conv_filters == ()


def test_sequence_classifiers_get_their_defaults_and_explicit_keys_win():
    raw = {"task": "classification", "data": {"series_id": "id", "label": "y"}}
    config = load_config(raw)
    for key, value in SEQUENCE_CLASSIFIER_MODEL.items():
        got = getattr(config.model, key)
        assert list(got) == value if isinstance(value, list) else got == value
    mine = load_config({**raw, "model": {"pooling": "last", "units": [8]}})
    assert mine.model.pooling == "last" and mine.model.units == (8,)
    assert mine.model.conv_filters == tuple(SEQUENCE_CLASSIFIER_MODEL["conv_filters"])
    # the user's own front: no default kernel sizes, and no pooling without a front
    two = load_config({**raw, "model": {"conv_filters": [4, 4]}}).model
    assert two.conv_layers == ((4, 3), (4, 3)) and two.conv_pool == "auto"
    assert load_config({**raw, "model": {"conv_filters": []}}).model.conv_pool == 1
    # a saved config reloads to the same model section
    assert load_config(mine.to_dict()).model == mine.model
    # forecasting and text keep the dataclass defaults
    assert load_config({}).model == ModelConfig()
    text = {"task": "classification", "model": {"embedding": {"vocab_size": 9, "dim": 2}}}
    assert load_config(text).model.conv_filters == ()


def test_sequence_scaler_needs_whole_sequences(sine_frame):
    from keras_lstm.training import prepare

    config = load_config({"data": {"targets": ["y"], "scaler": "sequence"}})
    with pytest.raises(ConfigError, match="data.scaler: sequence"):
        _ = prepare(config, sine_frame).scaler

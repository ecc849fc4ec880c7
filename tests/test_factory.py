import numpy as np
import pytest

from keras_lstm.config import ModelConfig, TrainingConfig
from keras_lstm.errors import ConfigError
from keras_lstm.factory import build_model, stack_layers


def _recurrent_layers(model):
    from keras import layers

    out = []
    for layer in stack_layers(model):
        if isinstance(layer, layers.Bidirectional):
            out.append((layer, layer.forward_layer))
        elif isinstance(layer, (layers.LSTM, layers.GRU)):
            out.append((layer, layer))
    return out


@pytest.mark.parametrize("units", [(8,), (8, 6), (8, 6, 4)])
@pytest.mark.parametrize("bidirectional", [False, True])
def test_return_sequences_chained(units, bidirectional):
    model = build_model(
        ModelConfig(units=units, bidirectional=bidirectional), (10, 3), (2, 1), "regression"
    )
    recurrent = _recurrent_layers(model)
    assert len(recurrent) == len(units)
    flags = [inner.return_sequences for _, inner in recurrent]
    assert flags == [True] * (len(units) - 1) + [False]
    assert [inner.units for _, inner in recurrent] == list(units)
    from keras import layers

    for outer, _ in recurrent:
        assert isinstance(outer, layers.Bidirectional) == bidirectional
    # two L2 penalties (kernel, recurrent kernel) per recurrent layer, per direction
    assert len(model.losses) == 2 * len(units) * (2 if bidirectional else 1)
    assert model.output_shape == (None, 2, 1)


def test_linear_path_wraps_regression_models_only():
    import keras

    plain = build_model(ModelConfig(units=(4,), linear_path=False), (6, 2), (3, 1))
    assert [type(layer).__name__ for layer in plain.layers] == [
        "LSTM",
        "Dropout",
        "Dense",
        "Reshape",
    ]
    linear = build_model(ModelConfig(units=(4,)), (6, 2), (3, 1))
    (wrapper,) = linear.layers
    assert wrapper.center == "none" and wrapper.highway is not None
    # the linear path alone: a Dense over the flattened window, added to the LSTM's output
    keras.utils.set_random_seed(0)
    x = np.random.default_rng(0).standard_normal((4, 6, 2)).astype("float32")
    kernel, bias = (
        np.random.default_rng(1).standard_normal(w.shape) for w in wrapper.highway.weights
    )
    wrapper.highway.set_weights([kernel, bias])
    core = wrapper.core.predict(x, verbose=0)
    expected = core + (x.reshape(4, -1) @ kernel + bias).reshape(4, 3, 1)
    np.testing.assert_allclose(linear.predict(x, verbose=0), expected, rtol=1e-4, atol=1e-5)
    classifier = build_model(ModelConfig(units=(4,)), (6, 2), 3, "classification")
    assert "WindowNormalized" not in [type(layer).__name__ for layer in classifier.layers]


def test_no_l2_means_no_regularization_losses():
    model = build_model(ModelConfig(units=(4, 4), l2=0.0), (5, 1), (1, 1))
    assert model.losses == []


def test_layer_order_with_every_option():
    config = ModelConfig(
        cell="gru",
        units=(8, 4),
        conv_filters=6,
        dense_units=(5, 3),
        dropout=0.1,
        recurrent_dropout=0.1,
    )
    model = build_model(config, (12, 2), (3, 2), "regression")
    stack = stack_layers(model)
    names = [layer.__class__.__name__ for layer in stack]
    assert names == [
        "Conv1D",
        "GRU",
        "Dropout",
        "GRU",
        "Dropout",
        "Dense",
        "Dense",
        "Dense",
        "Reshape",
    ]
    assert stack[0].padding == "causal"
    assert stack[1].recurrent_dropout == 0.1
    assert model.output_shape == (None, 3, 2)


def test_merge_mode_and_dropout_rate():
    model = build_model(
        ModelConfig(units=(4,), bidirectional=True, merge_mode="sum", dropout=0.3), (6, 1), (1, 1)
    )
    stack = stack_layers(model)
    assert stack[0].merge_mode == "sum"
    assert stack[0].output.shape[-1] == 4
    assert stack[1].rate == 0.3


@pytest.mark.parametrize(
    "classes, activation, loss",
    [(2, "sigmoid", "binary_crossentropy"), (4, "softmax", "sparse_categorical_crossentropy")],
)
def test_classification_heads(classes, activation, loss):
    model = build_model(ModelConfig(units=(4,)), (6, 2), classes, "classification")
    assert model.layers[-1].activation.__name__ == activation
    assert model.loss == loss
    assert model.output_shape == (None, 1 if classes == 2 else classes)


def test_optimizer_follows_training_config():
    training = TrainingConfig(learning_rate=0.01, clipnorm=0.5)
    model = build_model(ModelConfig(units=(4,)), (6, 2), (1, 1), training=training)
    assert model.optimizer.clipnorm == 0.5
    assert float(model.optimizer.learning_rate) == pytest.approx(0.01)
    assert model.loss == "mse"


def test_embedding_front():
    model = build_model(
        ModelConfig(units=(4,), embedding={"vocab_size": 50, "dim": 8}),
        (None,),
        3,
        "classification",
    )
    assert model.layers[0].__class__.__name__ == "Embedding"
    assert model.predict(np.array([[1, 2, 3]]), verbose=0).shape == (1, 3)


def test_save_and_safe_reload_give_identical_predictions(tmp_path):
    import keras

    config = ModelConfig(units=(6, 4), bidirectional=True, conv_filters=3, dense_units=(4,))
    model = build_model(config, (8, 2), (2, 1))
    x = np.random.default_rng(0).random((5, 8, 2)).astype(np.float32)
    path = tmp_path / "model.keras"
    model.save(path)
    loaded = keras.models.load_model(path, safe_mode=True)
    np.testing.assert_array_equal(model.predict(x, verbose=0), loaded.predict(x, verbose=0))


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"input_shape": (10,)}, r"input_shape.*\(time, features\)"),
        ({"input_shape": (10, 0)}, r"input_shape"),
        ({"output_shape": (1,)}, r"output_shape.*\(horizon, targets\)"),
        ({"task": "forecast"}, r"task"),
        ({"task": "classification", "output_shape": 1}, r"number of classes"),
    ],
)
def test_bad_shapes_raise_config_error(kwargs, match):
    args = {"input_shape": (10, 2), "output_shape": (1, 1), "task": "regression", **kwargs}
    with pytest.raises(ConfigError, match=match):
        build_model(ModelConfig(units=(4,)), **args)


@pytest.mark.parametrize(
    "bad, match",
    [
        ({"units": []}, "model.units"),
        ({"units": [0]}, r"model.units\[0\]"),
        ({"dropout": 1.0}, "model.dropout"),
        ({"cell": "rnn"}, "model.cell"),
    ],
)
def test_bad_model_configs_fail_before_keras(bad, match):
    with pytest.raises(ConfigError, match=match):
        ModelConfig(**bad)


def test_auto_front_follows_the_sequence_length():
    """`auto` pooling: 8 in all, and from 256 steps on the largest power of two up to L / 128
    of it right after the first `Conv1D`, so the later layers see under 256 steps."""
    from keras_lstm.factory import conv_front

    config = ModelConfig(conv_filters=(8, 8, 8), conv_kernel_size="auto", conv_pool="auto")
    for length in range(2, 3000, 7):
        pools = [p for _, _, p in conv_front(config, length)]
        assert int(np.prod(pools)) == 8 and pools[1] == 1
        assert pools[0] == 8 or length / pools[0] < 256
        assert pools[0] == 1 or length >= 256
    assert conv_front(config, None) == ((8, 8, 1), (8, 5, 1), (8, 3, 8))
    mine = ModelConfig(conv_filters=(8, 8), conv_kernel_size=(9, 2), conv_pool=4)
    assert conv_front(mine, 12) == conv_front(mine, 5000) == ((8, 9, 1), (8, 2, 4))


def test_auto_pooling_puts_part_of_the_pool_after_the_first_conv_on_long_sequences():
    from keras_lstm.sequence_layers import MaskedConv1D, MaskedMaxPooling1D

    config = ModelConfig(
        units=(4,), conv_filters=(4, 4, 4), conv_kernel_size="auto", conv_pool="auto"
    )

    def front(length):
        model = build_model(
            config, (None, 1), 3, "classification", mask_value=0.0, sequence_length=length
        )
        return [
            ("conv", layer.kernel_size[0])
            if isinstance(layer, MaskedConv1D)
            else ("pool", layer.pool_size)
            for layer in stack_layers(model)
            if isinstance(layer, (MaskedConv1D, MaskedMaxPooling1D))
        ]

    assert front(400) == [("conv", 8), ("pool", 2), ("conv", 5), ("conv", 3), ("pool", 4)]
    assert front(150) == [("conv", 8), ("conv", 5), ("conv", 3), ("pool", 8)]
    assert front(12) == [("conv", 8), ("conv", 5), ("conv", 3), ("pool", 8)]


def test_each_cell_name_builds_its_own_layer_and_others_are_refused():
    from keras_lstm.factory import recurrent_cell

    for name, kind in (("lstm", "LSTM"), ("gru", "GRU")):
        model = build_model(
            ModelConfig(cell=name, units=(3,), linear_path=False), (5, 2), (1, 1), "regression"
        )
        assert [type(a).__name__ for a in model.layers].count(kind) == 1
    with pytest.raises(ConfigError, match="model.cell 'rnn'"):
        recurrent_cell("rnn")  # a name without a layer is never silently a GRU

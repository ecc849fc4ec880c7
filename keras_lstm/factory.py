"""The model factory: a `ModelConfig` and shapes in, a compiled `keras.Sequential` out.

Example:
    >>> from keras_lstm.config import ModelConfig
    >>> model = build_model(ModelConfig(units=(8, 4)), (12, 3), (2, 1), "regression")
    >>> [layer.__class__.__name__ for layer in model.layers]
    ['WindowNormalized']
    >>> [layer.__class__.__name__ for layer in stack_layers(model)]
    ['LSTM', 'Dropout', 'LSTM', 'Dropout', 'Dense', 'Reshape']
"""

from __future__ import annotations

from collections.abc import Sequence

from keras_lstm.config import AUTO, TASKS, ModelConfig, TrainingConfig
from keras_lstm.errors import ConfigError
from keras_lstm.normalization import WindowNormalized
from keras_lstm.sequence_layers import (
    AttentionPooling,
    MaskedConv1D,
    MaskedMaxPooling1D,
    SequenceStandardized,
)


def _check_shapes(config: ModelConfig, input_shape, output_shape, task):
    if task not in TASKS:
        raise ConfigError(f"`task` must be one of {TASKS}. Received: task={task!r}")
    if not isinstance(config, ModelConfig):
        raise ConfigError(f"Expected a ModelConfig; received {type(config).__name__}.")
    input_shape = tuple(input_shape)
    expected_rank = 1 if config.embedding else 2
    if len(input_shape) != expected_rank or any(
        d is not None and (not isinstance(d, int) or d < 1) for d in input_shape
    ):
        what = "(time,) token ids" if config.embedding else "(time, features)"
        raise ConfigError(
            f"Expected `input_shape` to be {what} with positive sizes. "
            f"Received: input_shape={input_shape}"
        )
    if task == "regression":
        output_shape = tuple(output_shape)
        if len(output_shape) != 2 or min(output_shape) < 1:
            raise ConfigError(
                "Expected `output_shape` to be (horizon, targets) for regression. "
                f"Received: output_shape={output_shape}"
            )
    else:
        classes = output_shape[0] if isinstance(output_shape, Sequence) else output_shape
        if not isinstance(classes, int) or classes < 2:
            raise ConfigError(
                "Expected `output_shape` to be the number of classes (>= 2) for classification. "
                f"Received: output_shape={output_shape}"
            )
        output_shape = (classes,)
    return input_shape, output_shape


def stack_layers(model) -> list:
    """The layers of a factory model in order, those inside a `WindowNormalized` wrapper
    (window normalization, the linear path) in its place.

    Example:
        >>> [type(layer).__name__ for layer in stack_layers(model)]  # doctest: +SKIP
        ['LSTM', 'Dropout', 'Dense', 'Reshape']
    """
    out = []
    for layer in model.layers:
        core = getattr(layer, "core", None)
        out.extend(stack_layers(core) if core is not None else [layer])
    return out


# `model.conv_pool: auto`: the pool in all, and the most steps (about) the `Conv1D` layers
# after the first run on
MAX_AUTO_POOL = 8
MAX_CONV_STEPS = 128


def _power_of_two_at_most(value: float) -> int:
    power = 1
    while power * 2 <= value:
        power *= 2
    return power


def conv_front(config: ModelConfig, length: int | None) -> tuple[tuple[int, int, int], ...]:
    """`(filters, kernel_size, pool_after)` of each `Conv1D` of the front, with `auto` pooling
    resolved for sequences of typical `length` steps (the median length of the training
    sequences; a window's lookback; None when unknown).

    The rule, for `length` L: `auto` kernels are 8, 5, 3 (3 for further layers); `auto`
    pooling is 8 in all, and from L = 256 on a part E of it, the largest power of two up to
    L / 128, comes right after the first `Conv1D`, so the later ones run on at most about 128
    steps (long recordings train about twice as fast: PLAID 911 s -> 427-484 s). A pool that
    shrinks on short sequences was tried and dropped: the synthetic shape classes of
    `tests/test_sequences.py` (20 steps) fell to chance without the pool.
    With L unknown, a pool of 8 after the front.

    Example:
        >>> from keras_lstm.config import ModelConfig
        >>> config = ModelConfig(conv_filters=(64, 64, 64), conv_kernel_size="auto", conv_pool="auto")
        >>> conv_front(config, 150)
        ((64, 8, 1), (64, 5, 1), (64, 3, 8))
        >>> conv_front(config, 300)
        ((64, 8, 2), (64, 5, 1), (64, 3, 4))
    """  # noqa: E501
    layers = list(config.conv_layers)
    if not layers:
        return ()
    pools = [1] * len(layers)
    if config.conv_pool != AUTO:
        pools[-1] = config.conv_pool
    else:
        # short sequences keep the pool of 8: without it the synthetic shape test of
        # tests/test_sequences.py falls to chance (measured); only the split follows length
        early = _power_of_two_at_most(min(MAX_AUTO_POOL, (length or 0) / MAX_CONV_STEPS))
        if len(layers) > 1:
            pools[0] = early
        pools[-1] *= MAX_AUTO_POOL // pools[0]
    return tuple((f, k, p) for (f, k), p in zip(layers, pools, strict=True))


def recurrent_cell(name: str):
    """The Keras layer class of `model.cell` (`CELLS`): each name maps to one class, and a
    name without one is an error, never silently another cell.

    Example:
        >>> recurrent_cell("gru").__name__
        'GRU'
    """
    from keras import layers

    cells = {"lstm": layers.LSTM, "gru": layers.GRU}
    if name not in cells:
        raise ConfigError(
            f"model.cell {name!r} has no recurrent layer here; choose one of {sorted(cells)}."
        )
    return cells[name]


def build_model(
    model_config: ModelConfig,
    input_shape: Sequence[int | None],
    output_shape: Sequence[int] | int,
    task: str = "regression",
    training: TrainingConfig | None = None,
    mask_value: float | None = None,
    window_channels: Sequence[int] | None = None,
    season: int = 1,
    sequence_standardized: bool = False,
    sequence_length: int | None = None,
):
    """Build and compile a stacked recurrent `keras.Sequential`.

    Layers, in order: optional `Masking` (padded sequences) and per-sequence standardization;
    optional `Embedding`; the convolutional front (a causal `Conv1D` per `conv_filters` entry,
    mask-aware for padded sequences, then optional max pooling); one `LSTM`/`GRU` per entry of
    `units` (each `return_sequences=True` but the last, optionally wrapped in `Bidirectional`,
    L2 on kernel and recurrent kernel) with `Dropout` after each, the last one's outputs pooled
    by `model.pooling`; hidden `Dense` layers; the output layer. Regression:
    `Dense(horizon * targets)` reshaped to `(horizon, targets)`, MSE loss. Classification:
    sigmoid with binary cross-entropy for two classes, otherwise softmax with sparse
    categorical cross-entropy. Adam with `training.learning_rate` and `clipnorm`.

    Args:
        model_config: the `model` section.
        input_shape: `(time, features)`; `time` may be None. With an embedding: `(time,)`.
        output_shape: regression `(horizon, targets)`; classification the number of classes.
        task: `regression` or `classification`.
        training: the `training` section for the optimizer; default `TrainingConfig()`.
        mask_value: put a `Masking` layer first that skips time steps equal to this value
            (zero-padded variable-length sequences). Token inputs are not masked.
        window_channels: wrap the whole stack in a `WindowNormalized` layer (`data.scaler:
            window`): each window is centred on its last value and divided by its spread, and
            the output (regression) is mapped back through the input channels listed here, one
            per target. An empty tuple normalizes the inputs only (classification). With
            `model.linear_path` (regression) the wrapper also holds the linear path.
        sequence_standardized: with `mask_value` (whole sequences), standardize each
            sequence per channel by its own valid steps first and append the log of each
            channel's standard deviation and its signed log mean as channels (`data.scaler:
            sequence`).
        season: with `window_channels`, map the forecast back onto the seasonal naive forecast
            of this period when it fits in the window (`data.season`).
        sequence_length: the typical length of variable-length sequences (`input_shape[0]`
            None), for `auto` pooling (`conv_front`).

    Returns:
        A compiled `keras.Sequential`.

    Raises:
        ConfigError: the config or shapes are invalid (raised before Keras is touched).

    Example:
        >>> model = build_model(ModelConfig(units=(4,)), (None, 2), 3, "classification")
        >>> model.output_shape
        (None, 3)
    """
    input_shape, output_shape = _check_shapes(model_config, input_shape, output_shape, task)
    training = training or TrainingConfig()
    if window_channels is not None and (model_config.embedding or mask_value is not None):
        raise ConfigError(
            "Window normalization (`data.scaler: window`) applies to windows of numeric series; "
            "token inputs and padded whole sequences cannot use it. Choose another `data.scaler`."
        )
    import keras

    config = model_config
    stack = [keras.Input(shape=input_shape)]
    stack += _front_layers(
        config, input_shape[0] or sequence_length, mask_value, sequence_standardized
    )
    stack += _recurrent_layers(config)
    head, loss, metrics = _output_layers(task, output_shape, training)
    stack += head

    # a linear map of the whole window needs a fixed window: not for padded sequences or text
    linear = (
        config.linear_path
        and task == "regression"
        and not config.embedding
        and mask_value is None
        and input_shape[0] is not None
    )
    if window_channels is not None or linear:
        if (
            window_channels is not None
            and task == "regression"
            and len(window_channels) != output_shape[1]
        ):
            raise ConfigError(
                f"`window_channels` needs one input channel per target ({output_shape[1]}). "
                f"Received: window_channels={tuple(window_channels)}"
            )
        core = keras.Sequential(stack, name=f"{config.cell}_core")
        wrapper = WindowNormalized(
            core,
            tuple(window_channels or ()),
            center="none" if window_channels is None else "last",
            linear=linear,
            season=season,
        )
        stack = [keras.Input(shape=input_shape), wrapper]
    model = keras.Sequential(stack, name=f"stacked_{config.cell}")
    optimizer = keras.optimizers.Adam(
        learning_rate=training.learning_rate, clipnorm=training.clipnorm or None
    )
    model.compile(optimizer=optimizer, loss=loss, metrics=metrics)
    return model


def _front_layers(config: ModelConfig, length, mask_value, sequence_standardized) -> list:
    """Masking or the embedding, per-sequence standardization and the convolutional front
    (`conv_front` for sequences of about `length` steps)."""
    from keras import layers

    stack = []
    if mask_value is not None and not config.embedding:
        stack.append(layers.Masking(mask_value=mask_value))
    if config.embedding:
        # No mask_zero: padded token windows then mean the same in Keras and in the exported
        # fixed-length TFLite model, so device and training agree exactly.
        stack.append(layers.Embedding(config.embedding["vocab_size"], config.embedding["dim"]))
    masked = mask_value is not None and not config.embedding
    if masked and sequence_standardized:
        stack.append(SequenceStandardized(scale_channels=True, level_channels=True))
    for filters, kernel, pool_size in conv_front(config, length):
        conv = MaskedConv1D if masked else layers.Conv1D
        activation = None if config.batch_norm else "relu"
        stack.append(conv(filters, kernel, padding="causal", activation=activation))
        if config.batch_norm:
            stack += [layers.BatchNormalization(), layers.Activation("relu")]
        if pool_size > 1:
            pool = MaskedMaxPooling1D if masked else layers.MaxPooling1D
            stack.append(pool(pool_size) if masked else pool(pool_size, padding="same"))
    return stack


def _recurrent_layers(config: ModelConfig) -> list:
    """One recurrent layer per `units` entry (sequences chained, optionally Bidirectional, L2),
    the last one's outputs pooled by `model.pooling`, Dropout after each; hidden Dense layers."""
    from keras import layers, regularizers

    stack = []
    cell = recurrent_cell(config.cell)
    for position, units in enumerate(config.units):
        last = position == len(config.units) - 1
        recurrent = cell(
            units,
            return_sequences=not last or config.pooling != "last",
            recurrent_dropout=config.recurrent_dropout,
            kernel_regularizer=regularizers.L2(config.l2) if config.l2 else None,
            recurrent_regularizer=regularizers.L2(config.l2) if config.l2 else None,
        )
        if config.bidirectional:
            recurrent = layers.Bidirectional(recurrent, merge_mode=config.merge_mode)
        stack.append(recurrent)
        if last and config.pooling == "mean":
            stack.append(layers.GlobalAveragePooling1D())
        elif last and config.pooling == "attention":
            stack.append(AttentionPooling())
        if config.dropout:
            stack.append(layers.Dropout(config.dropout))
    for units in config.dense_units:
        stack.append(layers.Dense(units, activation="relu"))
    return stack


def _output_layers(task: str, output_shape, training: TrainingConfig):
    """The output layers, the loss and the metrics of `task`."""
    import keras
    from keras import layers

    if task == "regression":
        horizon, targets = output_shape
        head = [layers.Dense(horizon * targets), layers.Reshape((horizon, targets))]
        loss = {"mse": "mse", "mae": "mae", "huber": keras.losses.Huber()}[training.loss]
        return head, loss, ["mae"]
    if output_shape[0] == 2:
        return [layers.Dense(1, activation="sigmoid")], "binary_crossentropy", ["accuracy"]
    head = [layers.Dense(output_shape[0], activation="softmax")]
    return head, "sparse_categorical_crossentropy", ["accuracy"]

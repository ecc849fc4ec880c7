"""The operators of a `.tflite` file, read with TensorFlow's flatbuffer schema (export side).

Example:
    >>> ops, builtin_only = op_counts(Path("model.tflite").read_bytes())  # doctest: +SKIP
    >>> builtin_only  # doctest: +SKIP
    True
"""

from __future__ import annotations

from collections import Counter

from tensorflow.lite.python import schema_py_generated as schema


def _builtin_names() -> dict[int, str]:
    return {
        value: name
        for name, value in vars(schema.BuiltinOperator).items()
        if not name.startswith("_") and isinstance(value, int)
    }


def op_counts(model: bytes) -> tuple[dict[str, int], bool]:
    """The operators of every subgraph, by name, and whether all of them are builtins.

    Custom and Flex ops appear as `CUSTOM:<name>`.
    """
    names = _builtin_names()
    root = schema.Model.GetRootAs(model, 0)
    codes = []
    for index in range(root.OperatorCodesLength()):
        code = root.OperatorCodes(index)
        builtin = max(code.BuiltinCode(), code.DeprecatedBuiltinCode())
        if builtin == schema.BuiltinOperator.CUSTOM:
            custom = code.CustomCode()
            codes.append(f"CUSTOM:{custom.decode() if custom else '?'}")
        else:
            codes.append(names.get(builtin, f"BUILTIN_{builtin}"))
    counts: Counter = Counter()
    for graph_index in range(root.SubgraphsLength()):
        graph = root.Subgraphs(graph_index)
        for op_index in range(graph.OperatorsLength()):
            counts[codes[graph.Operators(op_index).OpcodeIndex()]] += 1
    builtin_only = not any(name.startswith("CUSTOM") for name in counts)
    return dict(sorted(counts.items())), builtin_only


def float_ops(model: bytes) -> dict:
    """What an integer export keeps in float: the ops whose output is float32 (DEQUANTIZE
    aside, whose output is float by definition), the names of their output tensors, and the
    share of the file held by float32 constants (their weights).

    Example:
        >>> float_ops(Path("model-int8.tflite").read_bytes())["ops"]  # doctest: +SKIP
        {'UNIDIRECTIONAL_SEQUENCE_LSTM': 2}
    """
    names = _builtin_names()
    root = schema.Model.GetRootAs(model, 0)
    codes = [
        max(root.OperatorCodes(i).BuiltinCode(), root.OperatorCodes(i).DeprecatedBuiltinCode())
        for i in range(root.OperatorCodesLength())
    ]
    counts: Counter = Counter()
    tensors, weight_bytes = [], 0
    for graph_index in range(root.SubgraphsLength()):
        graph = root.Subgraphs(graph_index)
        for op_index in range(graph.OperatorsLength()):
            op = graph.Operators(op_index)
            name = names.get(codes[op.OpcodeIndex()], "?")
            outputs = [graph.Tensors(op.Outputs(i)) for i in range(op.OutputsLength())]
            if name == "DEQUANTIZE" or not any(
                t.Type() == schema.TensorType.FLOAT32 for t in outputs
            ):
                continue
            counts[name] += 1
            tensors.append(outputs[0].Name().decode())
        for index in range(graph.TensorsLength()):
            tensor = graph.Tensors(index)
            if tensor.Type() == schema.TensorType.FLOAT32 and tensor.Buffer() > 0:
                weight_bytes += root.Buffers(tensor.Buffer()).DataLength()
    return {
        "ops": dict(sorted(counts.items())),
        "tensors": tensors,
        "float_weights_share": weight_bytes / max(1, len(model)),
    }

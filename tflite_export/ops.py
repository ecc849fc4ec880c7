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

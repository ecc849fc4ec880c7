"""A `.tflite` model as C/C++ source for TensorFlow Lite Micro: `model.cc` and `model.h`.

`model.cc` holds the model as an aligned `const unsigned char` array and its length; `model.h`
declares them and defines `RegisterOps(resolver)`, which registers exactly the builtin ops the
model uses (`AddUnidirectionalSequenceLSTM()`, `AddFullyConnected()`, ...), so a TFLite Micro
sketch compiles and finds every kernel on the first try. The ops are checked against TFLite
Micro's own resolver (`tflite_export.tflm_ops`); ones it lacks are listed, never hidden.

Example:
    >>> files = c_array_sources(Path("model.tflite").read_bytes(), "model")  # doctest: +SKIP
    >>> sorted(files)  # doctest: +SKIP
    ['model.cc', 'model.h']
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tensorflow.lite.python import schema_py_generated as schema

from keras_lstm.files import atomic_write_text
from tflite_export.ops import op_counts
from tflite_export.tflm_ops import TFLM_COMMIT, TFLM_RESOLVER

# TFLite Micro wants the flatbuffer 16-byte aligned (its schema's buffers are read in place).
ALIGNMENT = 16
BYTES_PER_LINE = 12
# The arena holds TFLite Micro's own bookkeeping beside the tensors: a margin on the estimate.
ARENA_OVERHEAD_BYTES = 4096

_TYPE_BYTES = {
    schema.TensorType.FLOAT32: 4,
    schema.TensorType.FLOAT16: 2,
    schema.TensorType.INT32: 4,
    schema.TensorType.INT64: 8,
    schema.TensorType.INT16: 2,
    schema.TensorType.INT8: 1,
    schema.TensorType.UINT8: 1,
    schema.TensorType.BOOL: 1,
}


@dataclass(frozen=True)
class MicroSupport:
    """What TFLite Micro needs to run a model.

    Attributes:
        registrations: `MicroMutableOpResolver` calls, one per builtin op, e.g.
            `AddFullyConnected`, sorted.
        missing: builtin ops the model uses that TFLite Micro has no kernel for.
        op_count: distinct ops, the resolver's template argument.
        arena_bytes: an upper bound on the tensor arena: every non-constant tensor (inputs,
            activations, the LSTMs' state) with no memory reuse, plus `ARENA_OVERHEAD_BYTES`.
    """

    registrations: list[str]
    missing: list[str]
    op_count: int
    arena_bytes: int

    def to_dict(self) -> dict:
        return {
            "resolver": [f"{name}()" for name in self.registrations],
            "missing_ops": list(self.missing),
            "op_count": self.op_count,
            "arena_bytes_estimate": self.arena_bytes,
            "tflm_commit": TFLM_COMMIT,
        }


def micro_support(content: bytes) -> MicroSupport:
    """The resolver registrations, missing ops and arena estimate of a `.tflite` model.

    Example:
        >>> micro_support(Path("model.tflite").read_bytes()).missing  # doctest: +SKIP
        []
    """
    ops, _ = op_counts(content)
    registrations = sorted(TFLM_RESOLVER[op] for op in ops if op in TFLM_RESOLVER)
    missing = sorted(op for op in ops if op not in TFLM_RESOLVER)
    return MicroSupport(registrations, missing, len(ops), _arena_bytes(content))


def _arena_bytes(content: bytes) -> int:
    root = schema.Model.GetRootAs(content, 0)
    total = 0
    for graph_index in range(root.SubgraphsLength()):
        graph = root.Subgraphs(graph_index)
        for index in range(graph.TensorsLength()):
            tensor = graph.Tensors(index)
            index_ = tensor.Buffer()
            buffer = root.Buffers(index_) if index_ < root.BuffersLength() else None
            constant = buffer is not None and (buffer.DataLength() > 0 or buffer.Size() > 0)
            if constant:
                continue
            shape = tensor.ShapeAsNumpy() if tensor.ShapeLength() else np.array([], int)
            elements = int(np.prod(np.maximum(shape, 1))) if len(shape) else 1
            total += elements * _TYPE_BYTES.get(tensor.Type(), 4)
    return total + ARENA_OVERHEAD_BYTES


def _identifier(name: str) -> str:
    """A C identifier from a file stem: `model-int8` -> `model_int8`."""
    text = re.sub(r"\W", "_", name)
    return text if text and not text[0].isdigit() else f"m_{text}"


def c_array_sources(content: bytes, stem: str, header_name: str | None = None) -> dict:
    """`{stem}.cc` and `{stem}.h` for the model bytes `content`, as text.

    Args:
        content: the `.tflite` bytes.
        stem: the file stem; the array is `g_{stem}` and its length `g_{stem}_len` (made C
            identifiers).
        header_name: the header's file name for the `#include`; default `{stem}.h`.

    Returns:
        `{file name: text}` for the two files.
    """
    name = _identifier(stem)
    header = header_name or f"{stem}.h"
    guard = f"KERAS_LSTM_{name.upper()}_H_"
    support = micro_support(content)
    registrations = "\n".join(
        f"  if (resolver.{call}() != kTfLiteOk) return kTfLiteError;"
        for call in support.registrations
    )
    missing = (
        f"// WARNING: TFLite Micro ({TFLM_COMMIT[:12]}) has no kernel for: "
        f"{', '.join(support.missing)}. This model will not run there.\n"
        if support.missing
        else ""
    )
    rows = []
    for start in range(0, len(content), BYTES_PER_LINE):
        chunk = content[start : start + BYTES_PER_LINE]
        rows.append("  " + ", ".join(f"0x{byte:02x}" for byte in chunk) + ",")
    source = (
        "// The model as a C array for TensorFlow Lite Micro, written by `keras-lstm export`.\n"
        f'#include "{header}"\n\n'
        f"alignas({ALIGNMENT}) const unsigned char g_{name}[] = {{\n" + "\n".join(rows) + "\n};\n"
        f"const unsigned int g_{name}_len = {len(content)};\n"
    )
    header_text = (
        "// The model as a C array for TensorFlow Lite Micro, written by `keras-lstm export`.\n"
        f"{missing}"
        f"// Ops: {', '.join(f'{call}()' for call in support.registrations)}\n"
        f"// Tensor arena: at most about {support.arena_bytes} bytes (no memory reuse counted).\n"
        f"#ifndef {guard}\n#define {guard}\n\n"
        f"extern const unsigned char g_{name}[];\n"
        f"extern const unsigned int g_{name}_len;\n"
        f"constexpr int k{_camel(name)}OpCount = {support.op_count};\n"
        f"constexpr int k{_camel(name)}ArenaBytes = {support.arena_bytes};\n\n"
        "#if defined(__has_include)\n"
        '#if __has_include("tensorflow/lite/micro/micro_mutable_op_resolver.h")\n'
        '#include "tensorflow/lite/micro/micro_mutable_op_resolver.h"\n'
        f"#define {guard}TFLM 1\n"
        "#endif\n#endif\n\n"
        f"#ifdef {guard}TFLM\n"
        "// Registers every op the model uses:\n"
        f"//   tflite::MicroMutableOpResolver<k{_camel(name)}OpCount> resolver;\n"
        f"//   Register{_camel(name)}Ops(resolver);\n"
        "template <unsigned int N>\n"
        f"inline TfLiteStatus Register{_camel(name)}Ops("
        "tflite::MicroMutableOpResolver<N>& resolver) {\n"
        f"{registrations}\n"
        "  return kTfLiteOk;\n"
        "}\n"
        "#endif\n\n"
        f"#endif  // {guard}\n"
    )
    return {f"{stem}.cc": source, header: header_text}


def _camel(name: str) -> str:
    return "".join(part[:1].upper() + part[1:] for part in name.split("_") if part)


def write_c_array(tflite_path, source_path) -> list:
    """Write `source_path` (`model.cc`) and the header beside it (`model.h`) for the `.tflite`
    file at `tflite_path`, each to a temporary name first, then renamed.

    Returns:
        The two paths written.

    Example:
        >>> write_c_array("model.tflite", "model.cc")  # doctest: +SKIP
        [PosixPath('model.cc'), PosixPath('model.h')]
    """
    tflite_path, source_path = Path(tflite_path), Path(source_path)
    header_path = source_path.with_suffix(".h")
    texts = c_array_sources(tflite_path.read_bytes(), source_path.stem, header_path.name)
    written = []
    for path in (source_path, header_path):
        atomic_write_text(path, texts[path.name])
        written.append(path)
    return written

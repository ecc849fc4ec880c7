"""Tests of `tflite_export.c_array`: `--format c-array` for TFLite Micro, and deterministic
exports."""

import json
import shutil
import subprocess
import types

import numpy as np
import pandas as pd
import pytest

from keras_lstm.errors import ExportError
from tflite_export.c_array import c_array_sources, micro_support
from tflite_export.cli import run_export
from tflite_export.tflm_ops import TFLM_RESOLVER

COMPILER = shutil.which("c++") or shutil.which("g++") or shutil.which("clang++")
needs_compiler = pytest.mark.skipif(COMPILER is None, reason="no C++ compiler on this machine")

# prints the model array as raw bytes, so the test can compare them with the .tflite file
PRINTER = """
#include <cstdio>
#include "{header}"
int main() {{
  std::fwrite({array}, 1, {array}_len, stdout);
  return 0;
}}
"""

# a stand-in for TFLite Micro's resolver with only the methods TFLite Micro has: the generated
# registration helper compiles against it only if every call it makes is a real method
STUB_RESOLVER = """
#pragma once
enum TfLiteStatus {{ kTfLiteOk = 0, kTfLiteError = 1 }};
namespace tflite {{
template <unsigned int N>
class MicroMutableOpResolver {{
 public:
  int count = 0;
{methods}
}};
}}
"""


@pytest.fixture(scope="module")
def bundle_dir(tmp_path_factory):
    import keras_lstm

    folder = tmp_path_factory.mktemp("c_array")
    t = np.arange(200)
    frame = pd.DataFrame(
        {"step": t, "y": np.sin(2 * np.pi * t / 16) + 0.1 * np.cos(t / 7), "x": np.cos(t / 5)}
    )
    config = {
        "seed": 0,
        "data": {"time_column": "step", "targets": ["y"], "lookback": 8},
        "model": {"units": [6]},
        "training": {"epochs": 2, "cv_splits": 2},
        "export": {"representative_windows": 64},
    }
    bundle = keras_lstm.fit(config, frame, verbose=0)
    bundle.save(folder / "bundle")
    return folder / "bundle"


def _export(bundle_dir, out, mode="int8-full", fmt="c-array", max_error=None):
    args = types.SimpleNamespace(
        bundle=str(bundle_dir), quantize=mode, out=str(out), max_error=max_error, format=fmt
    )
    return run_export(args)


@needs_compiler
def test_c_array_compiles_and_holds_the_tflite_bytes(bundle_dir, tmp_path, capsys):
    source = tmp_path / "model.cc"
    assert _export(bundle_dir, source) == 0
    printed = capsys.readouterr().out
    assert "model.cc" in printed and "TFLite Micro ops:" in printed
    tflite = tmp_path / "model.tflite"
    header = tmp_path / "model.h"
    assert tflite.is_file() and header.is_file()
    main = tmp_path / "main.cc"
    main.write_text(PRINTER.format(header="model.h", array="g_model"))
    program = tmp_path / "printer"
    subprocess.run(
        [COMPILER, "-std=c++17", "-o", str(program), str(main), str(source)],
        check=True,
        capture_output=True,
        cwd=tmp_path,
    )
    out = subprocess.run([str(program)], check=True, capture_output=True).stdout
    assert out == tflite.read_bytes()
    text = source.read_text()
    assert "alignas(16) const unsigned char g_model[]" in text
    assert f"g_model_len = {len(out)};" in text
    report = json.loads((tmp_path / "model.tflite.json").read_text())
    micro = report["micro"]
    assert "AddUnidirectionalSequenceLSTM()" in micro["resolver"]
    assert "AddFullyConnected()" in micro["resolver"]
    assert micro["missing_ops"] == []
    assert micro["op_count"] == len(report["ops"])
    assert micro["arena_bytes_estimate"] > 0


@needs_compiler
def test_registration_helper_calls_only_real_tflm_methods(bundle_dir, tmp_path):
    _export(bundle_dir, tmp_path / "model.cc")
    stub = tmp_path / "tensorflow" / "lite" / "micro" / "micro_mutable_op_resolver.h"
    stub.parent.mkdir(parents=True)
    methods = "\n".join(
        f"  TfLiteStatus {name}() {{ ++count; return kTfLiteOk; }}"
        for name in sorted(set(TFLM_RESOLVER.values()))
    )
    stub.write_text(STUB_RESOLVER.format(methods=methods))
    main = tmp_path / "register.cc"
    main.write_text(
        '#include "model.h"\n#include <cstdio>\n'
        "int main() { tflite::MicroMutableOpResolver<kModelOpCount> resolver;\n"
        "  if (RegisterModelOps(resolver) != kTfLiteOk) return 1;\n"
        '  std::printf("%d", resolver.count); return 0; }\n'
    )
    program = tmp_path / "register"
    subprocess.run(
        [COMPILER, "-std=c++17", "-I", str(tmp_path), "-o", str(program), str(main)],
        check=True,
        capture_output=True,
    )
    count = subprocess.run([str(program)], check=True, capture_output=True, text=True).stdout
    ops = json.loads((tmp_path / "model.tflite.json").read_text())["ops"]
    assert int(count) == len(ops)


def test_exports_are_byte_identical_across_runs(bundle_dir, tmp_path):
    for mode in ("float32", "int8-full"):
        _export(bundle_dir, tmp_path / "a" / "model.cc", mode)
        _export(bundle_dir, tmp_path / "b" / "model.cc", mode)
        for name in ("model.tflite", "model.cc", "model.h"):
            first = (tmp_path / "a" / name).read_bytes()
            assert first == (tmp_path / "b" / name).read_bytes(), (mode, name)


def test_missing_ops_are_named():
    import tensorflow as tf

    # GELU is a TFLite builtin that TFLite Micro has no kernel for
    @tf.function(input_signature=[tf.TensorSpec([1, 4], tf.float32)])
    def gelu(x):
        return tf.nn.gelu(x * 2.0)

    converter = tf.lite.TFLiteConverter.from_concrete_functions([gelu.get_concrete_function()])
    content = converter.convert()
    support = micro_support(content)
    assert "GELU" in support.missing
    header = c_array_sources(content, "gelu")["gelu.h"]
    assert "WARNING: TFLite Micro" in header and "GELU" in header


def test_c_array_needs_a_cc_name(bundle_dir, tmp_path):
    with pytest.raises(ExportError, match="model.cc"):
        _export(bundle_dir, tmp_path / "model.tflite")
    assert list(tmp_path.iterdir()) == []


def test_micro_support_of_float_lstm(bundle_dir, tmp_path):
    _export(bundle_dir, tmp_path / "model.tflite", "float32", fmt="tflite")
    support = micro_support((tmp_path / "model.tflite").read_bytes())
    ops = json.loads((tmp_path / "model.tflite.json").read_text())["ops"]
    assert support.registrations == sorted(TFLM_RESOLVER[op] for op in ops)
    assert support.op_count == len(ops)


def test_c_array_never_replaces_a_tflite_file_it_was_not_named(bundle_dir, tmp_path, capsys):
    # the README's sequence: a plain int8 export to model.tflite, then a C array to model.cc
    _export(bundle_dir, tmp_path / "model.tflite", "int8", fmt="tflite")
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    with pytest.raises(ExportError, match=r"model\.tflite already exists.*model-micro\.cc"):
        _export(bundle_dir, tmp_path / "model.cc")
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before  # nothing touched
    _export(bundle_dir, tmp_path / "model-micro.cc")  # the name the message suggests
    assert (tmp_path / "model.tflite").read_bytes() == before["model.tflite"]
    assert (tmp_path / "model-micro.tflite").is_file()
    capsys.readouterr()
    _export(bundle_dir, tmp_path / "model-micro.cc")  # its own earlier export: replaced, said so
    assert "replaced the earlier" in capsys.readouterr().out


def test_a_failed_export_onto_a_file_keeps_it_and_says_nothing_was_replaced(
    bundle_dir, tmp_path, capsys
):
    out = tmp_path / "model.tflite"
    _export(bundle_dir, out, "float32", fmt="tflite")
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    capsys.readouterr()
    with pytest.raises(ExportError, match="max_error"):  # int8 cannot meet a bar of 1e-9
        _export(bundle_dir, out, "int8", fmt="tflite", max_error=1e-9)
    assert "replaced" not in capsys.readouterr().out
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before

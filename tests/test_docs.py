"""The generated references in docs/ match the code they describe."""

from pathlib import Path

from keras_lstm.cli import help_markdown
from keras_lstm.config import SECTIONS, reference_markdown

DOCS = Path(__file__).resolve().parents[1] / "docs"


def test_config_reference_matches_the_config_classes():
    text = (DOCS / "config.md").read_text()
    assert reference_markdown() in text, (
        "docs/config.md is out of date: regenerate it from keras_lstm.config.reference_markdown()"
    )
    from dataclasses import fields

    for name, cls in SECTIONS.items():
        for f in fields(cls):
            assert f"`{name}.{f.name}`" in text


def test_every_config_key_is_documented_in_its_class():
    reference = reference_markdown()
    undocumented = [line for line in reference.splitlines() if line.endswith("|  |")]
    assert undocumented == []


def test_cli_reference_matches_every_help():
    text = (DOCS / "cli.md").read_text()
    assert help_markdown() in text, (
        "docs/cli.md is out of date: regenerate it from keras_lstm.cli.help_markdown()"
    )
    for command in ("quickstart", "train", "predict", "explain", "tune", "export"):
        assert f"## `keras-lstm {command}`" in text

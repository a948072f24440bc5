"""The shipped exported/generator.onnx still matches the shipped checkpoint (re-export when it changes)."""

from __future__ import annotations

import json
from pathlib import Path

from gankit.checkpoint import PRETRAINED, read_generator_file
from gankit.export import validate
from gankit.io import sha256_of
from gankit.onnx.build import read_metadata
from gankit.onnx.graph import read_graph

SHIPPED = Path(__file__).resolve().parents[1] / "exported" / "generator.onnx"


def test_shipped_export_is_of_the_shipped_checkpoint() -> None:
    props = read_metadata(SHIPPED)
    assert props["gankit_source_sha256"] == sha256_of(PRETRAINED), (
        "re-export: gankit export --out exported/generator.onnx"
    )
    assert props["gankit_precision"] == "fp32" and props["gankit_output"] == "float"


def test_shipped_export_passes_parity_and_its_report_is_committed(tmp_path: Path) -> None:
    report = json.loads(SHIPPED.with_name("generator.parity.json").read_text())
    assert report["passed"] and report["precision"] == "fp32"
    copy = tmp_path / SHIPPED.name
    copy.write_bytes(SHIPPED.read_bytes())
    assert validate(copy, log=lambda line: None).passed


def test_shipped_files_written_before_activations_were_configurable_still_read() -> None:
    """The bundled checkpoint and the shipped export hold config JSON without output_activation or per-layer
    slopes; both read as the seed's tanh generator, and the export still runs through the graph reader."""
    config, _, metadata = read_generator_file(PRETRAINED)
    assert "output_activation" not in metadata["config"]
    assert "output_activation" not in read_metadata(SHIPPED)["gankit_config"]
    graph = read_graph(SHIPPED)
    assert not graph.foreign and graph.config == config
    assert (graph.input_name, graph.output_name) == ("z", "image")
    assert config.output_activation == "tanh" and config.hidden_slopes == (0.2, 0.2) and config.hidden == (256, 512)

"""The shipped exports still match the shipped checkpoints (re-export when one changes): exported/generator.onnx
of the bundled generator, exported/generator_conditional.onnx of the bundled conditional one."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gankit.checkpoint import PRETRAINED, PRETRAINED_CONDITIONAL, read_generator_file
from gankit.export import validate
from gankit.io import sha256_of
from gankit.onnx.graph import read_graph, read_metadata

EXPORTED = Path(__file__).resolve().parents[1] / "exported"
SHIPPED = EXPORTED / "generator.onnx"
PAIRS = {
    "unconditional": (SHIPPED, PRETRAINED),
    "conditional": (EXPORTED / "generator_conditional.onnx", PRETRAINED_CONDITIONAL),
}


@pytest.mark.parametrize("kind", list(PAIRS))
def test_shipped_export_is_of_the_shipped_checkpoint(kind: str) -> None:
    export, checkpoint = PAIRS[kind]
    props = read_metadata(export)
    assert props["gankit_source_sha256"] == sha256_of(checkpoint), (
        f"re-export: gankit export {'conditional ' if kind == 'conditional' else ''}--force "
        f"--out exported/{export.name}"
    )
    assert props["gankit_precision"] == "fp32" and props["gankit_output"] == "float"
    assert read_graph(export).config == read_generator_file(checkpoint)[0]


@pytest.mark.parametrize("kind", list(PAIRS))
def test_shipped_export_passes_parity_and_its_report_is_committed(tmp_path: Path, kind: str) -> None:
    export, checkpoint = PAIRS[kind]
    report = json.loads(export.with_name(export.stem + ".parity.json").read_text())
    assert report["passed"] and report["precision"] == "fp32"
    copy = tmp_path / export.name
    copy.write_bytes(export.read_bytes())
    assert validate(copy, checkpoint=checkpoint, log=lambda line: None).passed


# The config text gankit wrote before activations, per-layer slopes and classes were configurable (the files
# shipped until 2026-11-26 hold it).
OLD_CONFIG_TEXT = '{"hidden": [256, 512], "image_shape": [1, 28, 28], "latent_dim": 100, "slope": 0.2}'


def test_files_written_before_activations_were_configurable_still_read(tmp_path: Path) -> None:
    """A checkpoint and an export whose config JSON has no output_activation, per-layer slopes or num_classes
    read as the seed's unconditional tanh generator, and the export still runs through the graph reader."""
    import onnx
    from safetensors.torch import save_file

    config, tensors, metadata = read_generator_file(PRETRAINED)
    old_checkpoint = tmp_path / "old.safetensors"
    save_file(tensors, str(old_checkpoint), metadata={**metadata, "config": OLD_CONFIG_TEXT})
    old = read_generator_file(old_checkpoint)[0]
    assert old == config and old.output_activation == "tanh" and old.hidden_slopes == (0.2, 0.2)
    assert old.num_classes == 0

    model = onnx.load(str(SHIPPED))
    for prop in model.metadata_props:
        if prop.key == "gankit_config":
            prop.value = OLD_CONFIG_TEXT
    old_export = tmp_path / "old.onnx"
    onnx.save(model, str(old_export))
    graph = read_graph(old_export)
    assert not graph.foreign and graph.config == config
    assert (graph.input_name, graph.output_name) == ("z", "image")

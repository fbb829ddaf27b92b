"""Format detection from file names and key sets, and what an unknown layout is told."""

from __future__ import annotations

import json

import pytest

from bertvault.errors import ConversionError
from bertvault.formats.detect import detect, locate


@pytest.mark.parametrize("label, expected", [
    ("tf1", "tf1"), ("tf1-hub", "tf1"), ("tf2", "tf2"), ("safetensors", "safetensors"), ("pt", "pt"),
    ("pt-sharded", "pt"), ("safetensors-sharded", "safetensors"), ("hf", "hf"), ("azureml-pt", "azureml-pt"),
    ("nvidia-pt", "nvidia-pt"), ("legacy-hub", "pt"),
])
def test_detects_each_layout(sources, label, expected):
    assert detect(sources(label)).format == expected


def test_a_tf_checkpoint_by_prefix_index_data_file_or_folder(sources):
    prefix = sources("tf1")
    data = next(prefix.parent.glob("bert_model.ckpt.data-*"))
    for path in (prefix, prefix.with_name("bert_model.ckpt.index"), data, prefix.parent):
        found = detect(path)
        assert (found.format, found.weights, found.folder) == ("tf1", prefix, prefix.parent)


def test_an_extracted_tarball_one_level_down(sources, tmp_path):
    outer = tmp_path / "view"
    (outer / "uncased_L-2").mkdir(parents=True)
    for part in sources("tf2").parent.iterdir():
        (outer / "uncased_L-2" / part.name).write_bytes(part.read_bytes())
    found = detect(outer)
    assert found.format == "tf2" and found.folder == outer / "uncased_L-2"


def test_unknown_layouts_list_what_was_recognised(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"hidden_size": 4}))
    (tmp_path / "vocab.txt").write_text("[PAD]\n")
    with pytest.raises(ConversionError,
                       match=r"no checkpoint recognised .*found: config\.json, vocab\.txt.*--from-format"):
        detect(tmp_path)
    odd = tmp_path / "weights.onnx"
    odd.write_bytes(b"x")
    with pytest.raises(ConversionError, match="cannot tell the format of .*weights.onnx"):
        detect(odd)


def test_from_format_overrides_detection(sources):
    azure = sources("azureml-pt")
    renamed = azure.with_name("encoder.pt")
    renamed.write_bytes(azure.read_bytes())
    assert detect(renamed).format == "pt"
    assert locate(renamed, "azureml-pt").format == "azureml-pt"
    assert locate(sources("hf"), "safetensors").weights.name == "model.safetensors"

"""--vocab-from: a file, a folder, or a registered name (following vocab_from); case and positions."""

from __future__ import annotations

import json
import shutil

import pytest

from bertvault import paths
from bertvault.cache import layout
from bertvault.data.vocab import locate
from bertvault.errors import DataError, ManifestError

MANIFEST = """
[[artifact]]
name = "tiny-cased-test"
kind = "checkpoint"
format = "tf1-checkpoint"
[artifact.architecture]
layers = 2
hidden = 32
heads = 2
intermediate = 64
vocab_size = {size}
cased = true
max_positions = 256

[[artifact.files]]
path = "vocab.txt"
urls = ["file:///nowhere/vocab.txt"]

[[artifact]]
name = "tiny-shards-test"
kind = "dataset"
format = "azureml-shards"
vocab_from = "tiny-cased-test"
[[artifact.files]]
path = "part_0.bin"
urls = ["file:///nowhere/part_0.bin"]

[[artifact]]
name = "orphan-shards-test"
kind = "dataset"
format = "azureml-shards"
vocab_from = "never-pulled-test"
[[artifact.files]]
path = "part_0.bin"
urls = ["file:///nowhere/part_0.bin"]

[[artifact]]
name = "never-pulled-test"
kind = "checkpoint"
format = "tf1-checkpoint"
architecture = {{ layers = 2, hidden = 32, heads = 2, intermediate = 64, vocab_size = 100, cased = false }}
[[artifact.files]]
path = "vocab.txt"
urls = ["file:///nowhere/vocab.txt"]
"""


@pytest.fixture
def registered(cased_vocab):
    manifests = paths.user_manifests_dir()
    manifests.mkdir(parents=True)
    size = len(cased_vocab.read_text(encoding="utf-8").splitlines())
    (manifests / "test.toml").write_text(MANIFEST.format(size=size), encoding="utf-8")
    view = layout.artifact_dir("tiny-cased-test")
    view.mkdir(parents=True)
    shutil.copy(cased_vocab, view / "vocab.txt")
    layout.meta_path("tiny-cased-test").parent.mkdir(parents=True, exist_ok=True)
    layout.meta_path("tiny-cased-test").write_text(json.dumps({"complete": True}))
    return view / "vocab.txt"


def test_registered_name_gives_case_and_positions_from_the_registry(registered):
    info = locate("tiny-cased-test")
    assert info.path == registered and info.lowercase is False and info.max_positions == 256
    assert info.case_from == "registry entry tiny-cased-test"


def test_vocab_from_is_followed(registered):
    # the shards themselves need not be pulled for their vocab to be found
    info = locate("tiny-shards-test")
    assert info.path == registered and info.lowercase is False and info.max_positions == 256


def test_unpulled_vocab_source_says_how_to_fix(registered):
    with pytest.raises(ManifestError, match="bertvault pull"):
        locate("orphan-shards-test")


def test_unknown_name(registered):
    with pytest.raises(ManifestError, match="neither an existing path nor a registered artifact"):
        locate("no-such-thing")


def test_folder_with_tokenizer_config_and_config(tmp_path, uncased_vocab):
    folder = tmp_path / "ckpt"
    folder.mkdir()
    shutil.copy(uncased_vocab, folder / "vocab.txt")
    (folder / "tokenizer_config.json").write_text(json.dumps({"do_lower_case": False}))
    (folder / "bert_config.json").write_text(json.dumps({"max_position_embeddings": 128}))
    info = locate(str(folder))
    assert info.lowercase is False and info.case_from.startswith("do_lower_case")
    assert info.max_positions == 128
    assert locate(str(folder), lowercase=True).lowercase is True


def test_heuristic_without_any_config(tmp_path, uncased_vocab, cased_vocab):
    shutil.copy(uncased_vocab, tmp_path / "u.txt")
    shutil.copy(cased_vocab, tmp_path / "c.txt")
    assert locate(str(tmp_path / "u.txt")).lowercase is True
    assert locate(str(tmp_path / "c.txt")).lowercase is False
    assert locate(str(tmp_path / "u.txt")).max_positions is None


def test_folder_search(tmp_path, uncased_vocab):
    nested = tmp_path / "zip" / "uncased_L-2_H-128_A-2"
    nested.mkdir(parents=True)
    shutil.copy(uncased_vocab, nested / "vocab.txt")
    assert locate(str(tmp_path / "zip")).path == nested / "vocab.txt"
    (tmp_path / "zip" / "other").mkdir()
    shutil.copy(uncased_vocab, tmp_path / "zip" / "other" / "vocab.txt")
    with pytest.raises(DataError, match="holds 2 vocab.txt files"):
        locate(str(tmp_path / "zip"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no vocab.txt"):
        locate(str(tmp_path / "empty"))

"""The embedded demo: the shipped checkpoint is what the builder makes, and it is a valid BERT."""

from __future__ import annotations

import hashlib
import zipfile

from bertvault.demo import build
from bertvault.demo.task import LEXICON, write_task
from bertvault.registry import load_registry


def test_shipped_demo_zip_is_rebuilt_byte_for_byte(tmp_path) -> None:
    spec = load_registry().get("bert-demo-tiny").files[0]
    shipped = spec.urls[0].removeprefix("file://")
    assert hashlib.sha256(open(shipped, "rb").read()).hexdigest() == spec.sha256
    rebuilt = build.build(tmp_path / "demo.zip")
    assert hashlib.sha256(rebuilt.read_bytes()).hexdigest() == spec.sha256


def test_demo_zip_has_google_layout_and_matching_vocab(tmp_path) -> None:
    artifact = load_registry().get("demo")
    with zipfile.ZipFile(artifact.files[0].urls[0].removeprefix("file://")) as archive:
        names = set(archive.namelist())
        root = artifact.files[0].archive_root
        assert {f"{root}/{n}" for n in ("bert_config.json", "vocab.txt", "bert_model.ckpt.index",
                                        "bert_model.ckpt.data-00000-of-00001")} <= names
        vocab = archive.read(f"{root}/vocab.txt").decode().splitlines()
    assert len(vocab) == artifact.architecture.vocab_size
    assert vocab[:5] == ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    assert set(LEXICON["positive"]) <= set(vocab)


def test_task_is_balanced_and_deterministic(tmp_path) -> None:
    train, dev = write_task(tmp_path / "a")
    again, _ = write_task(tmp_path / "b")
    assert train.read_text() == again.read_text()
    labels = [line.rsplit("\t", 1)[1] for line in train.read_text().splitlines()[1:]]
    assert 0.4 < labels.count("1") / len(labels) < 0.6

"""`prepare` from raw text: the examples' statistics, determinism, inputs it accepts and refuses."""

from __future__ import annotations

import gzip
import json
import logging
import shutil

import numpy as np
import pytest

from bertvault.data import prepare
from bertvault.data.dataset import PretrainingDataset
from bertvault.data.shards import HEADER
from bertvault.errors import DataError, UsageError


def _run(inputs, vocab, out, **options):
    lowercase = options.pop("lowercase", None)
    plan = prepare.plan([str(i) for i in inputs], str(vocab), str(out), prepare.Options(**options), lowercase)
    return prepare.run(plan)


def _pairs(out):
    data = PretrainingDataset(out, shuffle=False)
    return [data.pair(i) for i in range(data.num_examples)]


def test_pairs_follow_google_statistics_and_never_cross_documents(tmp_path, topic_corpus, uncased_vocab):
    text, owner = topic_corpus
    header = _run([text], uncased_vocab, tmp_path / "out", seq_len=64, dupe_factor=5)
    vocab = uncased_vocab.read_text(encoding="utf-8").split("\n")
    pairs = _pairs(tmp_path / "out")
    assert len(pairs) == header["counts"]["examples"] > 2000
    labels = np.array([label for _, _, label in pairs])
    # half the time, plus google's rule that a one-sentence chunk always takes a random B
    assert 0.47 < labels.mean() < 0.6
    for a, b, label in pairs:
        assert 1 <= len(a) and 1 <= len(b) and len(a) + len(b) <= 61
        a_docs = {owner[vocab[t]] for t in a.tolist()}
        b_docs = {owner[vocab[t]] for t in b.tolist()}
        assert len(a_docs) == 1 and len(b_docs) == 1
        assert (a_docs == b_docs) == (label == 0), "is-next pairs stay in their document, random ones don't"
    lengths = np.array([len(a) + len(b) for a, b, _ in pairs])
    assert (lengths == 61).mean() > 0.5  # most chunks fill the target length
    assert (lengths < 30).mean() > 0.05  # short_seq_prob makes some shorter ones


def test_output_header_and_files(tmp_path, corpus, uncased_vocab):
    header = _run([corpus], uncased_vocab, tmp_path / "out")
    out = tmp_path / "out"
    on_disk = json.loads((out / HEADER).read_text())
    assert on_disk == header
    assert header["lowercase"] is True and header["seq_len"] == 128 and header["dtype"] == "uint16"
    assert header["options"]["dupe_factor"] == 1
    assert (out / "vocab.txt").read_bytes() == uncased_vocab.read_bytes()
    ids = np.load(out / header["shards"][0]["ids"], mmap_mode="r")
    assert ids.dtype == np.uint16
    assert not list(out.glob(".*")), "no staging or temporary files are left"


@pytest.mark.parametrize("format", ["native", "tfrecord"])
def test_output_does_not_depend_on_worker_count(tmp_path, make_corpus, uncased_vocab, format):
    """Byte for byte, whichever process made a shard (TFRecords were not: protobuf wrote a map's entries
    in an order seeded per process)."""
    text = make_corpus(documents=300)
    one = _run([text], uncased_vocab, tmp_path / "one", workers=1, chunk_bytes=20_000, format=format)
    two = _run([text], uncased_vocab, tmp_path / "two", workers=2, chunk_bytes=20_000, format=format)
    assert len(one["shards"]) > 3 and one["shards"] == two["shards"]
    names = sorted(p.name for p in (tmp_path / "one").iterdir() if p.name != HEADER)
    assert names == sorted(p.name for p in (tmp_path / "two").iterdir() if p.name != HEADER)
    assert len(names) == len(one["shards"]) * (2 if format == "native" else 1) + 1  # and vocab.txt
    for name in names:
        assert (tmp_path / "one" / name).read_bytes() == (tmp_path / "two" / name).read_bytes(), name


def test_seed_changes_the_pairs(tmp_path, corpus, uncased_vocab):
    _run([corpus], uncased_vocab, tmp_path / "a", seed=1)
    _run([corpus], uncased_vocab, tmp_path / "b", seed=2)
    index = "part-00000.index.npy"
    assert (tmp_path / "a" / index).read_bytes() != (tmp_path / "b" / index).read_bytes()


def test_gzip_folders_and_globs(tmp_path, make_corpus, uncased_vocab):
    folder = tmp_path / "texts"
    folder.mkdir()
    plain = make_corpus("a.txt", 40, seed=1)
    packed = folder / "b.txt.gz"
    packed.write_bytes(gzip.compress(make_corpus("b.txt", 40, seed=2).read_bytes()))
    shutil.copy(plain, folder / "a.txt")
    by_folder = _run([folder], uncased_vocab, tmp_path / "out1")
    by_glob = _run([tmp_path / "texts" / "*"], uncased_vocab, tmp_path / "out2")
    assert by_folder["counts"]["documents"] == 80
    assert by_folder["counts"] == by_glob["counts"]
    assert {s["kind"] for s in by_folder["sources"]} == {"text"}


def test_cased_vocab_keeps_case(tmp_path, cased_vocab):
    text = tmp_path / "t.txt"
    text.write_text("Größe Straße.\nDer Zug fährt.\n\nEin Haus am See.\nMein Hund bellt.\n", encoding="utf-8")
    header = _run([text], cased_vocab, tmp_path / "out")
    assert header["lowercase"] is False and header["case_from"].startswith("vocab heuristic")
    forced = _run([text], cased_vocab, tmp_path / "out2", lowercase=True)
    assert forced["lowercase"] is True and forced["case_from"] == "command line"


def test_file_without_blank_lines_warns_and_still_works(tmp_path, sample_text, uncased_vocab, caplog):
    lines = [line for line in sample_text.read_text().split("\n") if line.strip()] * 20
    text = tmp_path / "one-document.txt"
    text.write_text("\n".join(lines) + "\n", encoding="utf-8")
    with caplog.at_level(logging.WARNING):
        header = _run([text], uncased_vocab, tmp_path / "out", dupe_factor=2)
    assert "has no blank line" in caplog.text
    assert header["counts"]["documents"] == 1 and header["counts"]["examples"] > 50
    assert 0.3 < header["counts"]["random_next"] / header["counts"]["examples"] < 0.7


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "empty file"),
        (bytes(range(256)) * 40, "not UTF-8 text, an AzureML .bin shard or a TFRecord"),
        (b"\x1f\x8b\x08\x00garbage-not-gzip", "gzip file cannot be read"),
    ],
)
def test_bad_input_files_are_refused_before_any_work(tmp_path, corpus, uncased_vocab, content, message):
    bad = tmp_path / "bad.txt"
    bad.write_bytes(content)
    with pytest.raises(DataError, match=message):
        _run([corpus, bad], uncased_vocab, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_a_nul_byte_is_text_wherever_it_stands(tmp_path, corpus, uncased_vocab):
    """A stray NUL (a scraped page, a bad copy) does not make UTF-8 text binary, in the first 64 KiB as
    later; the tokenizer drops it (as google's _clean_text does), so the examples are the same."""
    from bertvault.data import inputs

    text = corpus.read_bytes()
    early = tmp_path / "early.txt"
    early.write_bytes(b"\x00" + text.replace(b".\n", b".\x00\n", 3))
    late = tmp_path / "late.txt"
    late.write_bytes(text + b"\n" + b"word " * 20_000 + b"\x00\n")  # the NUL past the first 64 KiB
    assert [f.kind for f in inputs.classify([str(early), str(late)])] == ["text", "text"]
    plain = _run([corpus], uncased_vocab, tmp_path / "plain", seed=3)
    with_nul = _run([early], uncased_vocab, tmp_path / "nul", seed=3)
    assert with_nul["counts"] == {**plain["counts"], "text_bytes": plain["counts"]["text_bytes"] + 4}
    assert [p.tolist() for q in _pairs(tmp_path / "nul") for p in q[:2]] == \
        [p.tolist() for q in _pairs(tmp_path / "plain") for p in q[:2]]


@pytest.mark.parametrize("content", [b"\x00" * 5000, b"\x00\x01\x02\x03 \x04\x05" * 100 + b"a few words\n"])
def test_mostly_control_bytes_are_not_text(tmp_path, corpus, uncased_vocab, content):
    bad = tmp_path / "zeros.txt"
    bad.write_bytes(content)
    with pytest.raises(DataError, match="not UTF-8 text, an AzureML .bin shard or a TFRecord file"):
        _run([corpus, bad], uncased_vocab, tmp_path / "out")


def test_every_problem_is_reported_at_once(tmp_path, uncased_vocab):
    empty = tmp_path / "empty.txt"
    empty.write_bytes(b"")
    with pytest.raises(DataError) as caught:
        _run([empty, tmp_path / "missing.txt", tmp_path / "*.nothing"], uncased_vocab, tmp_path / "out")
    assert len(caught.value.problems) == 3


def test_only_blank_lines_gives_a_clear_error_and_no_output(tmp_path, uncased_vocab):
    blank = tmp_path / "blank.txt"
    blank.write_text("\n   \n\n", encoding="utf-8")
    with pytest.raises(DataError, match="no examples"):
        _run([blank], uncased_vocab, tmp_path / "out")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"seq_len": 7}, "--seq-len 7 is below 8"),
        ({"seq_len": 1024}, "exceeds the checkpoint's 512 positions"),
        ({"masked_lm_prob": 0.0}, "--masked-lm-prob"),
        ({"dupe_factor": -1}, "--dupe-factor"),
        ({"format": "parquet"}, "--format must be one of native, tfrecord"),
    ],
)
def test_bad_options(tmp_path, corpus, uncased_vocab, options, message):
    # the vocab's folder holds the checkpoint's config.json (max_position_embeddings 512)
    with pytest.raises(UsageError, match=message):
        _run([corpus], uncased_vocab.parent, tmp_path / "out", **options)


def test_vocab_lacking_special_tokens(tmp_path, corpus):
    vocab = tmp_path / "vocab.txt"
    vocab.write_text("[PAD]\n[UNK]\nthe\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"lacks \[CLS\], \[SEP\], \[MASK\]"):
        _run([corpus], vocab, tmp_path / "out")


def test_remote_output_other_than_gcs_is_refused(tmp_path, corpus, uncased_vocab):
    with pytest.raises(UsageError, match="remote output goes to gs://"):
        _run([corpus], uncased_vocab, "s3://bucket/prefix")


def test_non_empty_output_folder_is_refused(tmp_path, corpus, uncased_vocab):
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    with pytest.raises(DataError, match="not empty"):
        _run([corpus], uncased_vocab, out)
    assert [p.name for p in out.iterdir()] == ["keep.txt"]

"""`bertvault prepare --format tfrecord` against google-research/bert's own data code: its TFRecords
parse with run_pretraining.py's input_fn and hold google's tokens, and its examples are built as
create_pretraining_data.py builds them (compared over many seeds, since one run swings by percents)."""

from __future__ import annotations

import json
import math
import re
import statistics
import subprocess
import sys

import corpus
import numpy as np
import pytest
from interop import HERE, PARAGRAPH, env

# Outputs are made on first use (several bertvault runs): the first test that needs them waits for them.
pytestmark = [pytest.mark.conformance, pytest.mark.timeout(600)]

SEQ, PREDICTIONS = 128, 20
GOOGLE_FLAGS = {"max_seq_length": SEQ, "max_predictions_per_seq": PREDICTIONS, "masked_lm_prob": 0.15,
                "short_seq_prob": 0.1, "do_lower_case": "true"}
BERTVAULT_FLAGS = ["--seq-len", SEQ, "--max-predictions", PREDICTIONS, "--masked-lm-prob", 0.15,
                   "--short-seq-prob", 0.1, "--lowercase", "--format", "tfrecord", "--workers", 1]


def _records(google, files: list[str], count: int) -> list[dict]:
    """`count` examples through run_pretraining.input_fn_builder (eval mode: files in order), batch 1."""
    tf = google.tf
    with tf.Graph().as_default():
        dataset = google.run_pretraining.input_fn_builder(files, SEQ, PREDICTIONS, is_training=False)(
            {"batch_size": 1})
        features = tf.data.make_one_shot_iterator(dataset).get_next()
        with tf.Session() as session:
            return [{k: v[0] for k, v in session.run(features).items()} for _ in range(count)]


def _runs_of(documents: list[list[int]]) -> dict:
    """Every document's token stream indexed by its 4-token windows (and shorter prefixes)."""
    index: dict[tuple, set[int]] = {}
    for d, stream in enumerate(documents):
        for i in range(len(stream)):
            for k in range(1, 5):
                index.setdefault(tuple(stream[i:i + k]), set()).add(d)
    return index


def _documents_holding(segment: list[int], documents: list[list[int]], index: dict) -> set[int]:
    candidates = index.get(tuple(segment[:4]), set())
    text = "," + ",".join(map(str, segment)) + ","
    return {d for d in candidates if text in "," + ",".join(map(str, documents[d])) + ","}


# Greek capitals whose lower case ends a word in final sigma, as google's str.lower() writes it.
GREEK = ["ΟΔΥΣΣΕΥΣ και η Πηνελόπη περιμένουν στην Ιθάκη.", "Ελληνικά ΣΟΦΟΣ σοφός; ΌΣΟΣ ΟΔΟΣ."]


def _prepare_and_check(google, bertvault, minilm, out, docs: list[list[str]], dupe: int) -> dict:
    """prepare `docs` as TFRecords; every record through google's input_fn, its segments found among
    google's tokens of the documents. Returns the output's header."""
    source = corpus.write(out.with_suffix(".txt"), docs)
    result = bertvault("prepare", source, "--vocab-from", minilm / "vocab.txt", "--out", out, "--seed", 7,
                       "--dupe-factor", dupe, *BERTVAULT_FLAGS)
    header = json.loads((out / "bertvault-data.json").read_text())
    files = sorted(str(p) for p in out.glob("*.tfrecord"))
    count = header["counts"]["examples"]
    assert count and files
    share = header["counts"]["random_next"] / count
    assert f"{share:.1%} random next" in result.stdout  # the summary shows the random-next share

    tokenizer = google.tokenization.FullTokenizer(str(minilm / "vocab.txt"), do_lower_case=True)
    # One documented departure (README, "Tokenization"): a word-final capital sigma lower-cases to σ,
    # where google's Python gives ς; google's side is asked the same with it applied.
    streams = [[i for sentence in doc
                for i in tokenizer.convert_tokens_to_ids(tokenizer.tokenize(sentence.replace("Σ", "σ")))]
               for doc in docs]
    index = _runs_of(streams)
    cls, sep = tokenizer.vocab["[CLS]"], tokenizer.vocab["[SEP]"]
    records = _records(google, files, count)
    assert sum(int(r["next_sentence_labels"][0]) for r in records) == header["counts"]["random_next"]
    for n, record in enumerate(records):
        length = int(record["input_mask"].sum())
        ids = record["input_ids"][:length].astype(np.int64)
        assert record["input_mask"][:length].all() and not record["input_ids"][length:].any(), n
        seps = np.flatnonzero(ids == sep)
        assert ids[0] == cls and seps[-1] == length - 1, n
        # masked positions hold what masked_lm_ids says was there: put it back
        weights = record["masked_lm_weights"]
        masked = record["masked_lm_positions"][weights > 0]
        assert 1 <= len(masked) <= PREDICTIONS and set(weights.tolist()) <= {0.0, 1.0}, n
        ids[masked] = record["masked_lm_ids"][weights > 0]
        first_sep = seps[0] if ids[seps[0]] == sep else None
        a, b = ids[1:first_sep].tolist(), ids[first_sep + 1:length - 1].tolist()
        segments = record["segment_ids"][:length]
        assert not segments[:first_sep + 1].any() and segments[first_sep + 1:].all(), n
        docs_a = _documents_holding(a, streams, index)
        docs_b = _documents_holding(b, streams, index)
        assert docs_a and docs_b, f"example {n}: a segment is not a run of google's tokens of any document"
        if record["next_sentence_labels"][0] == 0:
            assert docs_a & docs_b, f"example {n}: an is-next pair spans two documents"
        else:
            assert any(x != y for x in docs_a for y in docs_b), f"example {n}: a random B from A's document"
    return header


def test_tfrecords_parse_with_googles_input_fn_and_hold_googles_tokens(google, bertvault, minilm, home):
    docs = [*corpus.documents(corpus.MODULES[:12]), PARAGRAPH, GREEK]
    header = _prepare_and_check(google, bertvault, minilm, home / "prepared", docs, dupe=2)
    assert header["counts"]["examples"] > 200 and header["counts"]["documents"] == len(docs)


def test_long_words_are_googles_pieces(google, bertvault, minilm, home):
    docs = [["a line with " + "ab" * 60 + " in its middle.", "and a second line."],
            ["another document with words.", "and its second sentence here."]]
    _prepare_and_check(google, bertvault, minilm, home / "prepared-long-words", docs, dupe=10)


SEEDS = list(range(1, 21))
DUPE = 5


def _google_runs(seeds: list[int], source, vocab, out) -> subprocess.Popen:
    flags = [f"--{k}={v}" for k, v in {**GOOGLE_FLAGS, "input_file": source, "vocab_file": vocab,
                                       "dupe_factor": DUPE}.items()]
    command = [sys.executable, str(HERE / "google_bert.py"), ",".join(map(str, seeds)), str(out), *flags]
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env(out))


def _standard_error(values: list[float]) -> float:
    return statistics.stdev(values) / math.sqrt(len(values))


def test_example_construction_matches_googles_over_many_seeds(google, bertvault, minilm, home):
    """20 seeds x 5 dupe passes of each, on ~400 KB of documentation text: the mean number of examples
    and the mean random-next share agree within 3 standard errors of their difference (one run differs
    from another by several percent, in google's script as in bertvault)."""
    source = corpus.write(home / "docs-corpus.txt", corpus.documents())
    vocab = minilm / "vocab.txt"
    work = home / "seeds"
    work.mkdir()
    # google's script in two processes (one per core), bertvault meanwhile
    runs = [_google_runs(SEEDS[k::2], source, vocab, work) for k in range(2)]
    ours = []
    for seed in SEEDS:
        out = work / f"bertvault-{seed}"
        result = bertvault("prepare", source, "--vocab-from", vocab, "--out", out, "--seed", seed,
                           "--dupe-factor", DUPE, *BERTVAULT_FLAGS)
        examples, random_next = 0, 0
        for path in sorted(out.glob("*.tfrecord")):
            counts = google_counts(google, path)
            examples, random_next = examples + counts[0], random_next + counts[1]
        printed = re.search(r"wrote ([\d,]+) examples .* ([\d.]+)% random next", result.stdout)
        assert int(printed.group(1).replace(",", "")) == examples
        assert float(printed.group(2)) == pytest.approx(100 * random_next / examples, abs=0.051)
        ours.append((examples, random_next / examples))
        for path in out.iterdir():
            path.unlink()
    theirs = []
    for run in runs:
        stdout, stderr = run.communicate(timeout=600)
        assert run.returncode == 0, stderr[-3000:]
        records = map(json.loads, stdout.splitlines())
        theirs += [(r["examples"], r["random_next"] / r["examples"]) for r in records]
    assert len(theirs) == len(ours) == len(SEEDS)
    for k, what in enumerate(("examples", "random-next share")):
        mine, google_values = [x[k] for x in ours], [x[k] for x in theirs]
        delta = statistics.mean(mine) - statistics.mean(google_values)
        error = math.hypot(_standard_error(mine), _standard_error(google_values))
        print(f"{what}: bertvault {statistics.mean(mine):.4g} ± {_standard_error(mine):.2g}, "
              f"google {statistics.mean(google_values):.4g} ± {_standard_error(google_values):.2g}")
        assert abs(delta) < 3 * error, f"{what}: means differ by {delta:.4g}, over 3 standard errors"


def google_counts(google, path) -> tuple[int, int]:
    import google_bert

    return google_bert.count_examples(google.tf, str(path))

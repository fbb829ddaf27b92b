"""Token classification: CoNLL/JSONL reading, tag schemes, seqeval entity scores, first-piece labels on
words of several WordPieces, windows over long sentences, a tiny model that learns, the HF export."""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import synthetic_conll, tag

from bertvault.errors import DataError
from bertvault.train import finetune
from bertvault.train.tasks import tagging
from bertvault.train.tasks.conll import Sentence, read_tagged
from bertvault.train.tasks.tokens import IGNORED, TokenTask, build_windows

CONLL = """-DOCSTART- -X- -X- O

EU NNP B-NP I-ORG
rejects VBZ B-VP O
German JJ B-NP I-MISC
call NN I-NP O
. . O O


Peter NNP B-NP I-PER
Blackburn NNP I-NP I-PER
"""


def test_conll_takes_the_first_and_last_columns_and_skips_docstart(tmp_path):
    path = tmp_path / "train.txt"
    path.write_text(CONLL)
    sentences = read_tagged(path)
    assert [s.words for s in sentences] == [["EU", "rejects", "German", "call", "."], ["Peter", "Blackburn"]]
    assert sentences[0].tags == ["I-ORG", "O", "I-MISC", "O", "O"] and sentences[1].line == 10
    unlabelled = tmp_path / "test.txt"
    unlabelled.write_text("Peter\nBlackburn\n\nEU\n")
    assert [s.tags for s in read_tagged(unlabelled, need_tags=False)] == [None, None]


def test_jsonl_sentences(tmp_path):
    path = tmp_path / "train.jsonl"
    path.write_text(json.dumps({"tokens": ["Peter", "Blackburn"], "tags": ["B-PER", "I-PER"]}) + "\n\n"
                    + json.dumps({"tokens": [], "tags": []}) + "\n")
    assert [(s.words, s.tags) for s in read_tagged(path)] == [(["Peter", "Blackburn"], ["B-PER", "I-PER"])]


@pytest.mark.parametrize(("name", "text", "message"), [
    ("a.txt", "EU B-ORG\nrejects\n", r"a\.txt line 2: the token alone"),
    ("b.jsonl", '{"tokens": ["a", "b"], "tags": ["O"]}\n', r"b\.jsonl line 1: 2 tokens but 1 tags"),
    ("c.jsonl", '{"tokens": ["a"], "tags": [3]}\n', r"c\.jsonl line 1: tokens and tags must be strings"),
    ("d.jsonl", '{"words": ["a"]}\n', r'd\.jsonl line 1: expected an object with a "tokens" list'),
    ("e.txt", "\n\n", r"e\.txt holds no sentences"),
])
def test_damaged_files_are_one_line(tmp_path, name, text, message):
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(DataError, match=message):
        read_tagged(path)


def test_tags_that_are_not_a_scheme_name_their_line(tmp_path):
    path = tmp_path / "train.txt"
    path.write_text("EU NNP B-ORG\nrejects VBZ O\n\nPeter NNP PER\n")
    with pytest.raises(DataError, match=r"train\.txt line 4: tag 'PER' is not O or B-/I-/E-/S-"):
        tagging.check_tags(read_tagged(path), path)


# --- schemes and scores -----------------------------------------------------------------------------

TYPES = [("Peter", "PER"), ("Blackburn", "PER"), ("Bob", "PER"), ("in", "O"), ("New", "LOC"), ("York", "LOC"),
         ("Paris", "LOC"), ("x", "O"), ("EU", "ORG")]


def test_schemes_are_detected_and_iob1_becomes_iob2():
    def sentence(scheme):
        return Sentence([w for w, _ in TYPES], [t for _, t in tag(TYPES, scheme)], 1)

    for scheme in ("IOB1", "IOB2", "BIOES"):
        assert tagging.detect_scheme([sentence(scheme)]) == scheme
    iob1 = sentence("IOB1").tags
    assert iob1[:3] == ["I-PER", "I-PER", "I-PER"]  # one run of one type: IOB1 cannot split it
    assert tagging.to_iob2(iob1) == sentence("IOB2").tags
    # IOB1's B-: a second entity right after one of the same type.
    assert tagging.to_iob2(["I-PER", "I-PER", "B-PER", "O", "I-LOC", "I-ORG"]) == \
        ["B-PER", "I-PER", "B-PER", "O", "B-LOC", "B-ORG"]


def test_seqeval_reads_the_same_entities_in_every_scheme():
    from seqeval.metrics.sequence_labeling import get_entities

    iob1 = ["I-PER", "I-PER", "B-PER", "O", "I-LOC", "I-LOC", "I-ORG"]
    iob2 = tagging.to_iob2(iob1)
    bioes = ["B-PER", "E-PER", "S-PER", "O", "B-LOC", "E-LOC", "S-ORG"]
    expected = [("PER", 0, 1), ("PER", 2, 2), ("LOC", 4, 5), ("ORG", 6, 6)]
    assert get_entities(iob1) == get_entities(iob2) == get_entities(bioes) == expected


def test_entity_scores_by_hand_and_per_type():
    gold = [["B-PER", "I-PER", "O", "B-LOC"], ["B-ORG", "O", "B-PER"]]
    predicted = [["B-PER", "I-PER", "O", "B-ORG"], ["B-ORG", "O", "O"]]
    scores, per_type = tagging.entity_scores(gold, predicted)
    # Gold entities: PER 0-1, LOC 3, ORG, PER. Predicted: PER 0-1 (right), ORG 3 (wrong), ORG (right).
    assert scores["precision"] == pytest.approx(2 / 3) and scores["recall"] == pytest.approx(2 / 4)
    assert scores["f1"] == pytest.approx(2 * (2 / 3) * (1 / 2) / (2 / 3 + 1 / 2))
    assert scores["accuracy"] == pytest.approx(5 / 7)
    assert per_type["PER"] == {"precision": 1.0, "recall": 0.5, "f1": pytest.approx(2 / 3), "support": 2}
    assert per_type["LOC"]["recall"] == 0.0 and per_type["ORG"]["precision"] == 0.5
    from seqeval.metrics import f1_score

    assert scores["f1"] == f1_score(gold, predicted)
    assert "micro avg" in tagging.format_report(per_type, scores)


# --- alignment and windows ----------------------------------------------------------------------------

@pytest.fixture
def minilm_encoder(minilm):
    from bertvault.data.tokenizer import LineEncoder

    return LineEncoder(minilm / "vocab.txt", True)


def _task(sentences, windows, labels):
    from types import SimpleNamespace

    settings = SimpleNamespace(metric=None, train="t", eval="e")
    tags = {"train": [s.tags for s in sentences], "eval": [s.tags for s in sentences]}
    split = {"train": sentences, "eval": sentences}
    return TokenTask(settings, split, {"train": windows, "eval": windows}, tags, labels, "IOB2",
                     {"[CLS]": 101, "[SEP]": 102, "[PAD]": 0})


def test_only_the_first_piece_of_a_word_carries_its_label(minilm_encoder, minilm):
    from bertvault.formats.vocab import vocab_tokens

    tokens = vocab_tokens(minilm / "vocab.txt")
    words = ["Unbelievably", ",", "Müller", "met", "Blackburn", "\u200b", "today"]  # U+200B: no piece at all
    tags = ["O", "O", "B-PER", "O", "B-PER", "O", "O"]
    sentence = Sentence(words, tags, 1)
    rows = build_windows([sentence], minilm_encoder, 64)
    task = _task([sentence], rows, ["O", "B-PER", "I-PER"])
    batch = task.batch("train", np.array([0]), None)
    pieces = [tokens[i] for i in batch["input_ids"][0].tolist()]
    labels = batch["labels"][0].tolist()
    assert pieces[:6] == ["[CLS]", "un", "##bel", "##ie", "##va", "##bly"]
    assert labels[:6] == [IGNORED, 0] + [IGNORED] * 4
    at = pieces.index("muller")
    assert labels[at] == 1 and pieces[-1] == "[SEP]" and labels[-1] == IGNORED
    first_pieces = [p for p, label in zip(pieces, labels, strict=True) if label != IGNORED]
    assert first_pieces == ["un", ",", "muller", "met", "blackburn", "today"]  # the empty word has none
    # Predictions come back one per word; the word without pieces is "O".
    predicted = np.array([2 if label == 1 else 0 for label in labels[1:-1]])
    assert task.word_tags("eval", [predicted]) == [["O", "O", "I-PER", "O", "I-PER", "O", "O"]]


def test_a_long_sentence_is_windowed_and_every_word_labelled_once(minilm_encoder):
    words = [f"w{i}" for i in range(60)]  # "w", "##N": two pieces each
    sentence = Sentence(words, ["O"] * 60, 1)
    rows = build_windows([sentence], minilm_encoder, 32)
    assert len(rows) > 4 and all(len(p) <= 30 for p in rows.pieces)
    owned = np.concatenate([w[w >= 0] for w in rows.word])
    assert sorted(owned.tolist()) == list(range(60))  # each word in exactly one window
    task = _task([sentence], rows, ["O", "B-X"])
    outputs = []
    for r in range(len(rows)):
        predicted = np.zeros(len(rows.pieces[r]), dtype=np.int32)
        predicted[rows.word[r] >= 0] = (rows.word[r][rows.word[r] >= 0] % 2)  # odd words tagged B-X
        outputs.append(predicted)
    assert task.word_tags("eval", outputs) == [["O", "B-X"] * 30]


# --- learning -----------------------------------------------------------------------------------------

def tokens_settings(tiny, train, dev, out, **more):
    values = {"from_": str(tiny), "task": "token-classification", "train": str(train), "eval": str(dev),
              "out": str(out), "max_seq_len": 16, "lr": 5e-3, "epochs": 4, "batch_size": 16, "dropout": 0.0}
    return finetune.resolve_settings({}, {**values, **more})


@pytest.mark.timeout(180)
def test_a_tiny_model_learns_iob1_ner_and_the_export_tags_alike(tmp_path, tiny_bert, task_words):
    torch = pytest.importorskip("torch")
    train = synthetic_conll(tmp_path / "train.txt", 300, 1, task_words, "IOB1")
    dev = synthetic_conll(tmp_path / "dev.txt", 60, 2, task_words, "IOB1")
    test = tmp_path / "test.txt"
    test.write_text("\n\n".join("\n".join(line.split()[0] for line in block.splitlines())
                                for block in dev.read_text().split("\n\n")[1:4]) + "\n")
    out = tmp_path / "out"
    result = finetune.run(tokens_settings(tiny_bert, train, dev, out, test=str(test)))
    assert result.best_scores["f1"] >= 0.9 and result.best_scores["PER_f1"] >= 0.9, result.history
    summary = json.loads((out / "eval_results.json").read_text())
    assert summary["scheme"] == "IOB1" and summary["labels"] == ["O", "B-LOC", "I-LOC", "B-PER", "I-PER"]
    assert "PER" in (out / "eval_report.txt").read_text()
    rows = [line.split() for line in (out / "eval_predictions.conll").read_text().splitlines() if line]
    gold_iob2 = [r[1] for r in rows]
    assert all(not t.startswith("I-") or gold_iob2[k - 1] != "O" for k, t in enumerate(gold_iob2))  # IOB2 now
    predicted = [r[2] for r in rows]
    test_rows = [line.split() for line in (out / "predictions.conll").read_text().splitlines() if line]
    assert [r[1] for r in test_rows] == predicted[: len(test_rows)]  # the same words, the same model

    from transformers import AutoModelForTokenClassification, AutoTokenizer

    model = AutoModelForTokenClassification.from_pretrained(out / "model").eval()
    tokenizer = AutoTokenizer.from_pretrained(out / "model")
    assert model.config.id2label == dict(enumerate(summary["labels"]))
    sentences = read_tagged(dev)
    theirs = []
    with torch.no_grad():
        for sentence in sentences:
            encoded = tokenizer(sentence.words, is_split_into_words=True, return_tensors="pt")
            labels = model(**encoded).logits.argmax(-1)[0].tolist()
            first = {}
            for position, word in enumerate(encoded.word_ids()):
                if word is not None and word not in first:
                    first[word] = model.config.id2label[labels[position]]
            theirs += [first.get(k, "O") for k in range(len(sentence.words))]
    assert theirs == predicted


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_minilm_learns_bioes_ner(tmp_path, minilm, task_words):
    """BIOES tags depend on the neighbours (S- or B- for a first name), which a real encoder reads."""
    train = synthetic_conll(tmp_path / "train.txt", 400, 1, task_words, "BIOES")
    dev = synthetic_conll(tmp_path / "dev.txt", 80, 2, task_words, "BIOES")
    result = finetune.run(tokens_settings(minilm, train, dev, tmp_path / "out", max_seq_len=32, lr=1e-4,
                                          epochs=3, dropout=0.1))
    assert result.best_scores["f1"] >= 0.9, result.history
    assert json.loads((tmp_path / "out" / "eval_results.json").read_text())["scheme"] == "BIOES"

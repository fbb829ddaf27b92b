"""SQuAD: google's features on real WordPieces, windows over long contexts, n-best decoding, file
checks, and tiny models that learn synthetic SQuAD v1.1 and v2.0 sets, exported to HF and TF1."""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import synthetic_squad

from bertvault.errors import DataError, UsageError
from bertvault.train import finetune
from bertvault.train.tasks import squad_eval
from bertvault.train.tasks.squad_data import read_squad
from bertvault.train.tasks.squad_decode import BasicTokens, Decoder, final_text, piece_text
from bertvault.train.tasks.squad_features import (
    build_features,
    improve_span,
    input_ids,
    max_context,
    split_words,
    tokenize_contexts,
    windows,
)

BACH = "Johann Sebastian Bach (1685-1750) was a composer. Unbelievably, his manuscripts survived."


def google_words(text: str) -> tuple[list[str], list[int]]:
    """run_squad.py's loop, character by character: the definition the regex version must match."""
    words, char_to_word, previous_space = [], [], True
    for c in text:
        if c in " \t\r\n" or ord(c) == 0x202F:
            previous_space = True
        else:
            if previous_space:
                words.append(c)
            else:
                words[-1] += c
            previous_space = False
        char_to_word.append(len(words) - 1)
    return words, char_to_word


@pytest.mark.parametrize("text", ["  Hello  world\u202fagain\tx\r\ny ", "one", "", "   ", "a\u00a0b c"])
def test_words_and_the_character_map_are_googles(text):
    words, char_to_word = split_words(text)
    assert (words, char_to_word.tolist()) == google_words(text)


@pytest.fixture
def encoder(minilm):
    from bertvault.data.tokenizer import LineEncoder

    return LineEncoder(minilm / "vocab.txt", True)


@pytest.fixture
def tokens(minilm):
    from bertvault.formats.vocab import vocab_tokens

    return vocab_tokens(minilm / "vocab.txt")


def test_every_piece_points_back_to_its_word(encoder, tokens):
    [context] = tokenize_contexts([BACH], encoder)
    pieces = [tokens[i] for i in context.pieces]
    assert pieces[3:8] == ["(", "1685", "-", "1750", ")"]
    assert pieces[12:17] == ["un", "##bel", "##ie", "##va", "##bly"]
    assert context.piece_word[3:8].tolist() == [3] * 5 and context.piece_word[12:18].tolist() == [7] * 6
    assert context.word_start.tolist() == [0, 1, 2, 3, 8, 9, 10, 12, 18, 19, 20, 22]


def test_the_answer_span_is_narrowed_to_the_answers_own_pieces(encoder):
    """google's example: the answer "1685" inside the word "(1685-1750)" is pieces 4..4, not 3..7."""
    [context] = tokenize_contexts([BACH], encoder)
    answer, _ = encoder.encode_lines(["1685"])
    assert improve_span(context.pieces, 3, 7, answer) == (4, 4)
    assert improve_span(context.pieces, 3, 7, encoder.encode_lines(["1685-1750"])[0]) == (4, 6)
    assert improve_span(context.pieces, 3, 7, encoder.encode_lines(["1900"])[0]) == (3, 7)  # not there: kept
    assert improve_span(context.pieces, 3, 7, np.zeros(0, np.int32)) == (3, 7)


def test_windows_over_a_long_context_and_the_best_window_of_each_piece():
    spans = windows(30, room=10, stride=4)
    assert spans == [(0, 10), (4, 10), (8, 10), (12, 10), (16, 10), (20, 10)]
    assert windows(7, room=10, stride=4) == [(0, 7)] and windows(0, 10, 4) == [(0, 0)]
    assert windows(25, room=10, stride=20) == [(0, 10), (10, 10), (20, 5)]  # a stride past the room: no gap
    best = max_context(spans, 30)
    # piece 5: window 0 has min(5, 4) = 4 pieces on its shorter side, window 1 min(1, 8) = 1 -> window 0.
    # piece 7: window 0 min(7, 2) = 2, window 1 min(3, 6) = 3 -> window 1.
    assert best[5] == 0 and best[7] == 1 and best[0] == 0 and best[29] == 5
    # Equal context on the shorter side: the score adds 0.01 * length, then the first window wins.
    assert max_context([(0, 4), (2, 4)], 6)[3] == 1  # min(3, 0) = 0 vs min(1, 2) = 1
    assert max_context([(0, 5), (2, 5)], 7)[3] == 0  # min(3, 1) = min(1, 3), same length: the first
    assert max_context([(3, 3), (0, 6)], 6)[4] == 1  # min(1, 1) both: the longer window (+0.06 vs +0.03)
    for w, (start, length) in enumerate(spans):  # each window's own pieces form one run
        owned = np.flatnonzero(best[start : start + length] == w)
        assert len(owned) and np.all(np.diff(owned) == 1)


def test_training_windows_point_at_the_answer_or_at_cls(tmp_path, encoder, tokens, task_words):
    words = ["alpha", "beta", "gamma", "delta", "epsilon", "zeta", "theta", "kappa", "lambda", "sigma"]
    path = synthetic_squad(tmp_path / "train.json", 30, 3, words * 10, length=60)
    squad = read_squad(path, version_2=False)
    features = build_features(squad, encoder, max_seq_len=32, max_query_len=8, doc_stride=10, training=True)
    assert features.skipped == 0
    assert len(features) > 3 * len(squad.questions)  # long contexts: several windows each
    cls, sep = tokens.index("[CLS]"), tokens.index("[SEP]")
    holding = set()
    for f in range(len(features)):
        sequence = input_ids(features, f, cls, sep)
        assert len(sequence) <= 32 and sequence[0] == cls and sequence[-1] == sep
        question = squad.questions[features.question[f]]
        start, end = features.start_position[f], features.end_position[f]
        if start:
            assert piece_text(tokens, sequence[start : end + 1]) == question.answers[0].text
            holding.add(features.question[f])
        else:
            assert end == 0
    assert holding == set(range(len(squad.questions)))  # every answer is inside some window


def test_questions_are_cut_to_max_query_len(tmp_path, encoder):
    path = synthetic_squad(tmp_path / "dev.json", 2, 1, ["alpha", "beta", "gamma"] * 40)
    squad = read_squad(path, version_2=False)
    features = build_features(squad, encoder, max_seq_len=20, max_query_len=3, doc_stride=5, training=False)
    assert {len(q) for q in features.queries} == {3}
    assert max(features.length) == 20 - 3 - 3  # [CLS] 3 question pieces [SEP] 14 context pieces [SEP]


# --- decoding -------------------------------------------------------------------------------------

def test_final_text_projects_the_pieces_onto_the_original_words(minilm):
    from bertvault.formats.tokenizer import build_tokenizer

    basic = BasicTokens(build_tokenizer(minilm / "vocab.txt", True))
    assert final_text("steve smith", "Steve Smith's", basic) == "Steve Smith"
    assert final_text("1685", "(1685-1750)", basic) == "1685"
    assert final_text("1685 - 1750", "(1685-1750)", basic) == "1685-1750"
    assert final_text("paris", "London", basic) == "London"  # not found: the original words
    assert final_text("cafe", "Café!", basic) == "Café"  # NFC: one character each side, aligned
    assert final_text("cafe", "Cafe\u0301!", basic) == "Cafe\u0301!"  # decomposed: lengths differ


def _decoder(tmp_path, encoder, tokens, minilm, version_2=False, n_best=20, max_answer_len=30):
    from bertvault.formats.tokenizer import build_tokenizer

    path = tmp_path / "dev.json"
    context = " ".join(f"w{i}" for i in range(40))  # each "wN" is two pieces or so; 40 words
    answer = {"text": "w10", "answer_start": context.index("w10 ")}
    qa = {"id": "q", "question": "which?", "answers": [answer]}
    path.write_text(json.dumps({"data": [{"paragraphs": [{"context": context, "qas": [qa]}]}]}))
    squad = read_squad(path, version_2)
    features = build_features(squad, encoder, max_seq_len=24, max_query_len=8, doc_stride=6, training=False)
    basic = BasicTokens(build_tokenizer(minilm / "vocab.txt", True))
    return squad, features, Decoder(squad, features, tokens, basic, n_best, max_answer_len, version_2)


def _logits(features, f, spans: dict[tuple[int, int], float], null=0.0):
    """Start/end logits of window f: every span (context piece offsets) given its score, [CLS] `null`."""
    n = features.offset(f) + features.length[f] + 1
    logits = np.full((2, n), -10.0, dtype=np.float32)
    logits[:, 0] = null / 2
    for (start, end), score in spans.items():
        logits[0, features.offset(f) + start - features.start[f]] = score / 2
        logits[1, features.offset(f) + end - features.start[f]] = score / 2
    return logits


def test_decoding_ranks_spans_over_windows_and_keeps_max_context(tmp_path, encoder, tokens, minilm):
    squad, features, decoder = _decoder(tmp_path, encoder, tokens, minilm, max_answer_len=4)
    context = features.contexts[0]
    assert len(features) >= 4
    piece_of = {w: int(context.word_start[i]) for i, w in enumerate(context.words)}
    spans = {f: (features.start[f], features.start[f] + features.length[f]) for f in range(len(features))}
    w10, last10, w12 = piece_of["w10"], int(context.word_start[11]) - 1, int(context.word_start[13]) - 1
    owners = [f for f in spans if spans[f][0] <= w10 and last10 < spans[f][1]]
    best = next(f for f in owners if features.max_context[f][w10 - features.start[f]])
    other = next(f for f in owners if f != best)
    assert w12 < spans[best][1] and w12 - w10 + 1 > 4
    outputs = [_logits(features, f, {}) for f in range(len(features))]
    outputs[other] = _logits(features, other, {(w10, last10): 9.0})  # higher, but not where w10 is best
    outputs[best] = _logits(features, best, {(w10, last10): 5.0})
    decoded = decoder.decode(outputs)
    assert decoded.answers == {"q": "w10"}
    # A longer span than --max-answer-len is never proposed, however high its logits.
    outputs[best] = _logits(features, best, {(w10, last10): 5.0, (w10, w12): 20.0})
    assert decoder.decode(outputs).answers == {"q": "w10"}
    nbest = decoder.decode(outputs).nbest["q"]
    assert nbest[0]["text"] == "w10" and abs(sum(e["probability"] for e in nbest) - 1) < 1e-6
    assert len({e["text"] for e in nbest}) == len(nbest) <= 20  # distinct texts


def test_no_answer_score_and_threshold(tmp_path, encoder, tokens, minilm):
    squad, features, decoder = _decoder(tmp_path, encoder, tokens, minilm, version_2=True)
    context = features.contexts[0]
    w10, last10 = int(context.word_start[10]), int(context.word_start[11]) - 1
    outputs = []
    for f in range(len(features)):
        inside = features.start[f] <= w10 and last10 < features.start[f] + features.length[f]
        outputs.append(_logits(features, f, {(w10, last10): 4.0} if inside else {}, null=1.0 + f))
    decoded = decoder.decode(outputs)
    # The no-answer score is the lowest [CLS] score over the windows (window 0: 1.0); the best answer 4.0.
    assert decoded.answers == {"q": "w10"} and decoded.null_odds["q"] == pytest.approx(1.0 - 4.0)
    assert decoded.predictions(-3.5) == {"q": ""} and decoded.predictions(-2.5) == {"q": "w10"}
    assert any(e["text"] == "" for e in decoded.nbest["q"])


# --- files ----------------------------------------------------------------------------------------

@pytest.mark.parametrize(("change", "message"), [
    (lambda d: d.pop("data"), r"top level: no 'data'"),
    (lambda d: d["data"][0]["paragraphs"][0].pop("context"), r"data\[0\]\.paragraphs\[0\]: no 'context'"),
    (lambda d: d["data"][1]["paragraphs"][0]["qas"][0].update(question=7),
     r"data\[1\]\.paragraphs\[0\]\.qas\[0\]\.question: expected str, got int"),
    (lambda d: d["data"][2]["paragraphs"][0]["qas"][0]["answers"][0].update(answer_start=10_000),
     r"data\[2\]\.paragraphs\[0\]\.qas\[0\]\.answers\[0\]: answer_start 10000"),
    (lambda d: d["data"][2]["paragraphs"][0]["qas"][0].update(answers=[]),
     r"has no answer; for SQuAD 2\.0 data .* --version-2-with-negative"),
    (lambda d: d["data"][3]["paragraphs"][0]["qas"][0].update(id="q1-0"), r"id 'q1-0' appears twice"),
])
def test_damaged_files_are_one_line_naming_the_item(tmp_path, task_words, change, message):
    path = synthetic_squad(tmp_path / "train.json", 5, 1, task_words)
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data))
    with pytest.raises(DataError, match=message) as error:
        read_squad(path, version_2=False)
    assert "\n" not in str(error.value) and str(path) in str(error.value)


def test_not_json_and_the_hubs_parquet(tmp_path, task_words):
    bad = tmp_path / "bad.json"
    bad.write_text('{"data": [')
    with pytest.raises(DataError, match=r"bad\.json is not JSON \(line 1"):
        read_squad(bad, version_2=False)
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    path = synthetic_squad(tmp_path / "dev.json", 9, 2, task_words, version_2=True)
    squad = read_squad(path, version_2=True)
    rows = [{"id": q.qid, "title": "t", "context": squad.contexts[q.paragraph], "question": q.text,
             "answers": {"text": [a.text for a in q.answers], "answer_start": [a.start for a in q.answers]}}
            for q in squad.questions]
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "validation-00000-of-00001.parquet")
    hub = read_squad(tmp_path / "validation-00000-of-00001.parquet", version_2=True)
    assert hub.gold() == squad.gold() and hub.contexts == squad.contexts
    with pytest.raises(DataError, match="has no answer"):
        read_squad(tmp_path / "validation-00000-of-00001.parquet", version_2=False)


# --- learning -------------------------------------------------------------------------------------

def squad_settings(tiny, train, dev, out, **more):
    values = {"from_": str(tiny), "task": "squad", "train": str(train), "eval": str(dev), "out": str(out),
              "max_seq_len": 32, "max_query_len": 8, "doc_stride": 8, "lr": 5e-3, "epochs": 2,
              "batch_size": 16, "dropout": 0.0}
    return finetune.resolve_settings({}, {**values, **more})


@pytest.mark.timeout(180)
def test_a_tiny_model_learns_squad_and_its_exports_answer_alike(tmp_path, tiny_bert, task_words):
    torch = pytest.importorskip("torch")
    train = synthetic_squad(tmp_path / "train-v1.1.json", 300, 1, task_words)
    dev = synthetic_squad(tmp_path / "dev-v1.1.json", 60, 2, task_words)
    out = tmp_path / "out"
    result = finetune.run(squad_settings(tiny_bert, train, dev, out, export=["tf1"]))
    # Chance: one of ~40 words (and most windows do not hold the answer at all).
    assert result.best_scores["exact"] >= 80 and result.best_scores["f1"] >= 80, result.history

    predictions = json.loads((out / "predictions.json").read_text())
    squad = read_squad(dev, version_2=False)
    assert set(predictions) == {q.qid for q in squad.questions}
    assert squad_eval.evaluate_v1(squad.gold(), predictions)["exact_match"] == result.best_scores["exact"]
    nbest = json.loads((out / "nbest_predictions.json").read_text())
    assert all(nbest[qid][0]["text"] == text for qid, text in predictions.items())
    summary = json.loads((out / "eval_results.json").read_text())
    assert summary["task"] == "squad" and summary["version"] == "1.1" and summary["metric"] == "f1"

    # The HF export, fed the same windows, gives the same answers.
    from transformers import AutoModelForQuestionAnswering

    from bertvault.train.tasks import squad as squad_task

    model = AutoModelForQuestionAnswering.from_pretrained(out / "model").eval()
    assert model.config.architectures == ["BertForQuestionAnswering"]
    settings = squad_settings(tiny_bert, train, dev, tmp_path / "again")
    source, lowercase = finetune.load_source(settings)
    task = squad_task.prepare(settings, source, lowercase)
    widths = [int(task.batch("eval", np.array([f]), None)["attention_mask"].sum())
              for f in range(task.size("eval"))]
    assert task.lengths("eval").tolist() == widths  # what batches of similar length are grouped by
    outputs = []
    with torch.no_grad():
        for f in range(task.size("eval")):
            batch = task.batch("eval", np.array([f]), None)
            outputs += task.outputs(model(**batch), batch)
    assert task.decoder.decode(outputs).answers == predictions

    # The TF1 export carries run_squad.py's head names, the same weights.
    from bertvault.convert import load_canonical

    canonical = load_canonical(out / "tf1")
    try:
        qa = {k: v.load() for k, v in canonical.tensors.items() if k.startswith("qa_outputs.")}
    finally:
        canonical.close()
    assert np.allclose(qa["qa_outputs.weight"], model.qa_outputs.weight.detach().numpy())
    assert qa["qa_outputs.weight"].shape == (2, model.config.hidden_size)
    tf = pytest.importorskip("tensorflow")
    names = dict(tf.train.list_variables(str(out / "tf1" / "bert_model.ckpt")))
    assert names["cls/squad/output_weights"] == [2, model.config.hidden_size]
    assert names["cls/squad/output_bias"] == [2]


@pytest.mark.timeout(180)
def test_a_tiny_model_learns_squad_2_with_unanswerable_questions(tmp_path, tiny_bert, task_words):
    train = synthetic_squad(tmp_path / "train-v2.0.json", 300, 1, task_words, version_2=True)
    dev = synthetic_squad(tmp_path / "dev-v2.0.json", 60, 2, task_words, version_2=True)
    out = tmp_path / "out"
    result = finetune.run(squad_settings(tiny_bert, train, dev, out, version_2_with_negative=True, epochs=3))
    scores = result.best_scores
    assert scores["HasAns_f1"] >= 70 and scores["NoAns_f1"] >= 70 and scores["f1"] >= 70, result.history
    assert scores["f1"] == pytest.approx(scores["best_f1"])  # the threshold is the best-F1 one
    predictions = json.loads((out / "predictions.json").read_text())
    odds = json.loads((out / "null_odds.json").read_text())
    threshold = scores["null_score_diff_threshold"]
    assert all((predictions[q] == "") == (odds[q] > threshold) for q in predictions)
    gold = read_squad(dev, version_2=True).gold()
    assert squad_eval.evaluate_v2(gold, predictions)["f1"] == pytest.approx(scores["f1"])


def test_squad_settings_are_checked_before_anything_runs(tmp_path, tiny_bert):
    with pytest.raises(UsageError, match=r"--max-seq-len 64 leaves no room .* 64-token question"):
        finetune.resolve_settings({}, {"from_": str(tiny_bert), "task": "squad", "train": "t.json",
                                       "eval": "d.json", "out": str(tmp_path), "max_seq_len": 64,
                                       "max_query_len": 64})
    with pytest.raises(UsageError, match="--metric accuracy does not score --task squad; use f1 or exact"):
        finetune.resolve_settings({}, {"from_": "x", "task": "squad", "train": "t", "eval": "d", "out": "o",
                                       "metric": "accuracy"})
    given = {"from_": "x", "task": "squad", "train": "t", "eval": "d", "out": "o"}
    with pytest.raises(UsageError, match="--test is not read by --task squad"):
        finetune.resolve_settings({}, {**given, "test": "t.json"})
    defaults = finetune.resolve_settings({}, given)
    assert (defaults.max_seq_len, defaults.lr, defaults.epochs, defaults.batch_size) == (384, 3e-5, 2, 12)
    assert (defaults.doc_stride, defaults.max_query_len) == (128, 64)
    assert (defaults.n_best, defaults.max_answer_len) == (20, 30)


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_minilm_learns_squad(tmp_path, minilm, task_words):
    """A real checkpoint and its real vocab: the answer after the marker word, well above chance."""
    train = synthetic_squad(tmp_path / "train.json", 400, 1, task_words)
    dev = synthetic_squad(tmp_path / "dev.json", 80, 2, task_words)
    settings = squad_settings(minilm, train, dev, tmp_path / "out", max_seq_len=64, max_query_len=16,
                              doc_stride=24, lr=1e-4, epochs=2, batch_size=16)
    result = finetune.run(settings)
    assert result.best_scores["exact"] >= 80, result.history


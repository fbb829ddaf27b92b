"""`--task token-classification`: a tag per word (NER and the like), BertForTokenClassification.

Sentences come from CoNLL-style or JSONL files (conll.py), their scheme found and IOB1 trained as
IOB2 (tagging.py); the label set is the training file's tags. Each word is split into WordPieces;
its tag is learned and predicted on its first piece, the other pieces carry no label (-100, which
the loss skips). A sentence longer than --max-seq-len - 2 pieces is cut into overlapping windows
(half a window apart) and each word is labelled and predicted in the window where its first piece
has the most context, as SQuAD's windows do (squad_features.py). A word that has no piece at all
(only characters the tokenizer drops) is predicted "O".

Every epoch: entity precision, recall and F1 with seqeval, `<TYPE>_f1` per entity type, and for
the best epoch OUT/eval_predictions.conll (word, gold, predicted: conlleval's input) and
OUT/eval_report.txt (the per-type table). With --test: OUT/predictions.conll.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np
import torch

from bertvault.data.tokenizer import LineEncoder
from bertvault.formats.vocab import vocab_tokens
from bertvault.train.tasks import heads, tagging
from bertvault.train.tasks.conll import Sentence, read_tagged, write_conll
from bertvault.train.tasks.loop import Evaluation
from bertvault.train.tasks.squad_features import max_context, windows

log = logging.getLogger(__name__)

METRICS = ("f1",)
DEFAULTS = {"lr": 5e-5}
IGNORED = -100  # the label id the loss skips (transformers' CrossEntropyLoss ignore_index)


@dataclass
class Windows:
    """A split's sentences as model rows: piece ids and, per piece, the word it labels (or -1)."""

    pieces: list[np.ndarray] = field(default_factory=list)
    word: list[np.ndarray] = field(default_factory=list)  # word index of each owned first piece, else -1
    sentence: list[int] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.pieces)


def sentence_windows(counts: np.ndarray, room: int) -> tuple[np.ndarray, list[tuple[int, int]], np.ndarray]:
    """(first piece of each word or -1, the windows, each piece's best window) of one sentence."""
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.int64)
    first = np.where(counts > 0, starts, -1)
    total = int(counts.sum())
    spans = windows(total, room, max(1, room // 2))
    return first, spans, max_context(spans, total)


def build_windows(sentences: list[Sentence], encoder: LineEncoder, max_seq_len: int) -> Windows:
    words = [w.replace("\n", " ") for s in sentences for w in s.words]
    ids, counts = encoder.encode_lines(words)
    out, word_at, piece_at = Windows(), 0, 0
    for k, sentence in enumerate(sentences):
        n = len(sentence.words)
        word_counts = counts[word_at : word_at + n]
        pieces = ids[piece_at : piece_at + int(word_counts.sum())]
        first, spans, best = sentence_windows(word_counts, max_seq_len - 2)
        for w, (start, length) in enumerate(spans):
            owner = np.full(length, -1, dtype=np.int64)
            for word in np.flatnonzero((first >= start) & (first < start + length)):
                if best[first[word]] == w:
                    owner[first[word] - start] = word
            out.pieces.append(pieces[start : start + length])
            out.word.append(owner)
            out.sentence.append(k)
        word_at, piece_at = word_at + n, piece_at + len(pieces)
    return out


class TokenTask:
    head = "token"

    def __init__(self, settings, sentences: dict[str, list[Sentence]], rows: dict[str, Windows],
                 tags: dict[str, list[list[str]]], labels: list[str], scheme: str, special: dict[str, int]):
        self.settings, self.sentences, self.rows, self.tags = settings, sentences, rows, tags
        self.labels, self.scheme = labels, scheme
        self.lookup = {t: i for i, t in enumerate(labels)}
        self.cls, self.sep, self.pad = special["[CLS]"], special["[SEP]"], special["[PAD]"]
        self.metric = settings.metric or METRICS[0]
        self.sources = [p for p in (settings.train, settings.eval) if p]

    def head_fields(self) -> dict:
        return heads.label_fields(self.labels)

    def summary(self) -> dict:
        return {"labels": self.labels, "scheme": self.scheme}

    def size(self, split: str) -> int:
        return len(self.rows[split]) if split in self.rows else 0

    def batch(self, split: str, rows: np.ndarray, fixed_length: int | None) -> dict[str, torch.Tensor]:
        data = self.rows[split]
        length = fixed_length or max(len(data.pieces[r]) for r in rows) + 2
        ids = torch.full((len(rows), length), self.pad, dtype=torch.long)
        mask = torch.zeros((len(rows), length), dtype=torch.long)
        labels = torch.full((len(rows), length), IGNORED, dtype=torch.long)
        for j, r in enumerate(rows):
            n = len(data.pieces[r])
            ids[j, : n + 2] = torch.from_numpy(np.concatenate([[self.cls], data.pieces[r], [self.sep]]))
            mask[j, : n + 2] = 1
            if split == "train":
                tags = self.tags["train"][data.sentence[r]]
                owned = np.flatnonzero(data.word[r] >= 0)
                labels[j, owned + 1] = torch.tensor([self.lookup[tags[w]] for w in data.word[r][owned]])
        batch = {"input_ids": ids, "token_type_ids": torch.zeros_like(ids), "attention_mask": mask}
        if split == "train":
            batch["labels"] = labels
        return batch

    def outputs(self, output, batch) -> list[np.ndarray]:
        predicted = output.logits.argmax(-1).cpu().numpy().astype(np.int32)
        lengths = batch["attention_mask"].sum(-1).tolist()
        return [row[1 : n - 1] for row, n in zip(predicted, lengths, strict=True)]  # without [CLS], [SEP]

    def word_tags(self, split: str, outputs: list[np.ndarray]) -> list[list[str]]:
        """Predicted tags per word of each sentence ("O" for a word without pieces)."""
        data = self.rows[split]
        result = [["O"] * len(s.words) for s in self.sentences[split]]
        for r, predicted in enumerate(outputs):
            owned = np.flatnonzero(data.word[r] >= 0)
            for position, word in zip(owned, data.word[r][owned], strict=True):
                result[data.sentence[r]][word] = self.labels[predicted[position]]
        return result

    def evaluate(self, outputs: list[np.ndarray]) -> Evaluation:
        predicted = self.word_tags("eval", outputs)
        gold = self.tags["eval"]
        scores, per_type = tagging.entity_scores(gold, predicted)
        scores.update({f"{kind}_f1": v["f1"] for kind, v in per_type.items()})
        files = {"eval_predictions.conll": write_conll(self.sentences["eval"], gold, predicted),
                 "eval_report.txt": tagging.format_report(per_type, scores)}
        return Evaluation(scores, files)

    def predictions(self, outputs: list[np.ndarray]) -> dict[str, str]:
        return {"predictions.conll": write_conll(self.sentences["test"], self.word_tags("test", outputs))}


def read_split(path: str, need_tags: bool) -> list[Sentence]:
    sentences = read_tagged(path, need_tags)
    if need_tags:
        tagging.check_tags(sentences, path)
    return sentences


def prepare(settings, source, lowercase: bool) -> TokenTask:
    sentences = {"train": read_split(settings.train, True), "eval": read_split(settings.eval, True)}
    if settings.test:
        sentences["test"] = read_split(settings.test, False)
    # Each file in its own scheme: seqeval reads the entities of IOB1, IOB2 and BIOES alike.
    scheme = tagging.detect_scheme(sentences["train"])
    tags = {split: tagging.training_tags(sentences[split], tagging.detect_scheme(sentences[split]))
            for split in ("train", "eval")}
    labels = tagging.label_list(tags["train"])
    unseen = sorted(tagging.entity_types(tags["eval"]) - tagging.entity_types(tags["train"]))
    if unseen:
        log.warning("%s has entity types the training file never had (never predicted): %s", settings.eval,
                    ", ".join(unseen[:10]))
    log.info("token classification: %s tags (%s), %d labels", scheme, settings.train, len(labels))
    encoder = LineEncoder(source.vocab_path, lowercase)
    rows = {split: build_windows(sentences[split], encoder, settings.max_seq_len) for split in sentences}
    tokens = vocab_tokens(source.vocab_path)
    special = {t: tokens.index(t) for t in ("[CLS]", "[SEP]", "[PAD]")}
    return TokenTask(settings, sentences, rows, tags, labels, scheme, special)

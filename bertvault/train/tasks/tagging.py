"""Tag schemes for token classification, and entity scores as seqeval computes them.

A tag is "O" or PREFIX-TYPE with PREFIX one of B (begins), I (inside), E (ends), S (single).

- IOB2: every entity starts with B-.
- IOB1 (CoNLL-2003 as first published): entities start with I-; B- only starts an entity that
  directly follows one of the same type.
- BIOES (also IOBES): B- I- ... E- for entities of several words, S- for one word.

A file's scheme is found from its tags: E- or S- make it BIOES; an I- that starts an entity
makes it IOB1. IOB1 tags are trained as IOB2 (the same entities, each starting with B-), so the
model learns one tag for "an entity starts here". Entity precision, recall and F1 are seqeval's
default (conlleval) mode, the scores CoNLL-2003 results are reported in, with its per-type report.
"""

from __future__ import annotations

import logging
import re

from bertvault.errors import DataError
from bertvault.train.tasks.conll import Sentence

log = logging.getLogger(__name__)

TAG = re.compile(r"^(?:O|([BIES])-(.+))$")
PREFIX_ORDER = {"B": 0, "I": 1, "E": 2, "S": 3}


def split_tag(tag: str) -> tuple[str, str]:
    """("O", "") or (prefix, type)."""
    match = TAG.match(tag)
    if match is None:
        raise ValueError(tag)
    return (match.group(1), match.group(2)) if match.group(1) else ("O", "")


def check_tags(sentences: list[Sentence], path) -> None:
    for sentence in sentences:
        for k, tag in enumerate(sentence.tags or []):
            if not TAG.match(tag):
                raise DataError(f"{path} line {sentence.line + k}: tag {tag!r} is not O or B-/I-/E-/S- and a "
                                "type (such as B-PER); tags in the last column")


def _starts_with_i(tags: list[str]) -> bool:
    """Does an I- tag start an entity (the previous tag is not of its type)?"""
    previous = "O"
    for tag in tags:
        prefix, kind = split_tag(tag)
        if prefix == "I" and previous != kind:
            return True
        previous = kind if prefix != "O" else "O"
    return False


def detect_scheme(sentences: list[Sentence]) -> str:
    tags = [s.tags or [] for s in sentences]
    prefixes = {split_tag(t)[0] for sentence in tags for t in sentence}
    if prefixes & {"E", "S"}:
        return "BIOES"
    return "IOB1" if any(_starts_with_i(sentence) for sentence in tags) else "IOB2"


def to_iob2(tags: list[str]) -> list[str]:
    """IOB1 -> IOB2: an I- that starts an entity becomes B-; the entities stay the same."""
    out, previous = [], "O"
    for tag in tags:
        prefix, kind = split_tag(tag)
        out.append(f"B-{kind}" if prefix == "I" and previous != kind else tag)
        previous = kind if prefix != "O" else "O"
    return out


TRAINING_FORM = {"IOB1": to_iob2, "IOB2": list, "BIOES": list}


def training_tags(sentences: list[Sentence], scheme: str) -> list[list[str]]:
    return [TRAINING_FORM[scheme](s.tags or []) for s in sentences]


def entity_types(tag_lists: list[list[str]]) -> set[str]:
    return {split_tag(t)[1] for tags in tag_lists for t in tags} - {""}


def label_list(tag_lists: list[list[str]]) -> list[str]:
    """"O" first, then each type's tags in B, I, E, S order, types sorted."""
    tags = {t for tags in tag_lists for t in tags} - {"O"}
    ordered = sorted(tags, key=lambda t: (split_tag(t)[1], PREFIX_ORDER[split_tag(t)[0]]))
    return ["O", *ordered]


def entity_scores(gold: list[list[str]],
                  predicted: list[list[str]]) -> tuple[dict[str, float], dict[str, dict]]:
    """(overall scores, per-type report) as seqeval computes them; accuracy is per token."""
    from seqeval.metrics import accuracy_score, classification_report, f1_score, precision_score, recall_score

    scores = {"precision": precision_score(gold, predicted, zero_division=0),
              "recall": recall_score(gold, predicted, zero_division=0),
              "f1": f1_score(gold, predicted, zero_division=0),
              "accuracy": accuracy_score(gold, predicted)}
    report = classification_report(gold, predicted, output_dict=True, zero_division=0)
    per_type = {kind: {"precision": float(v["precision"]), "recall": float(v["recall"]),
                       "f1": float(v["f1-score"]), "support": int(v["support"])}
                for kind, v in report.items() if not kind.endswith(" avg")}
    return {k: float(v) for k, v in scores.items()}, per_type


def format_report(per_type: dict[str, dict], scores: dict[str, float]) -> str:
    """The per-type table, as seqeval's classification_report lays it out."""
    width = max([len(k) for k in per_type] + [9])
    lines = [f"{'':>{width}}  precision    recall  f1-score   support", ""]
    for kind, v in sorted(per_type.items()):
        numbers = f"{v['precision']:9.4f} {v['recall']:9.4f} {v['f1']:9.4f} {v['support']:9d}"
        lines.append(f"{kind:>{width}}  {numbers}")
    support = sum(v["support"] for v in per_type.values())
    lines += ["", f"{'micro avg':>{width}}  {scores['precision']:9.4f} {scores['recall']:9.4f} "
                  f"{scores['f1']:9.4f} {support:9d}"]
    return "\n".join(lines) + "\n"

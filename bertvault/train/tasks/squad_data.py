"""SQuAD files read and checked: the JSON as published (v1.1, v2.0) and the Hub's Parquet mirrors.

JSON: {"data": [{"title", "paragraphs": [{"context", "qas": [{"id", "question", "answers":
[{"text", "answer_start"}], "is_impossible" (v2.0)}]}]}]}. Parquet (rajpurkar/squad and
rajpurkar/squad_v2): one row per question with id, context, question and answers {text: [...],
answer_start: [...]}; rows sharing a context become one paragraph.

Damage is one DataError naming the file and the item (`data[3].paragraphs[0].qas[7]`): a field
missing or of the wrong type, an answer outside its context, an id seen twice. A question without
an answer is an error unless the data is SQuAD 2.0 (`--version-2-with-negative`).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path

from bertvault.errors import DataError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Answer:
    text: str
    start: int  # character offset in the context


@dataclass
class Question:
    qid: str
    text: str
    paragraph: int  # index into SquadSet.contexts
    answers: list[Answer]

    @property
    def impossible(self) -> bool:
        return not self.answers


@dataclass
class SquadSet:
    path: Path
    contexts: list[str] = field(default_factory=list)
    questions: list[Question] = field(default_factory=list)

    def gold(self) -> dict[str, list[str]]:
        """What the official scripts score against: question id -> answer texts ([] if unanswerable)."""
        return {q.qid: [a.text for a in q.answers] for q in self.questions}


class _Checker:
    """Type checks that name the file and the item of the first problem."""

    def __init__(self, path: Path):
        self.path = path

    def fail(self, where: str, problem: str):
        raise DataError(f"{self.path}: {where}: {problem}; is this a SQuAD file as published?")

    def field(self, item, where: str, name: str, kind: type | tuple[type, ...]):
        if not isinstance(item, dict):
            self.fail(where, f"expected an object, got {type(item).__name__}")
        if name not in item:
            self.fail(where, f"no {name!r}")
        value = item[name]
        if not isinstance(value, kind) or isinstance(value, bool) and kind is int:
            names = kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__ for k in kind)
            self.fail(f"{where}.{name}", f"expected {names}, got {type(value).__name__}")
        return value


def _answers(check: _Checker, qa: dict, where: str, context: str) -> list[Answer]:
    answers = []
    for k, answer in enumerate(check.field(qa, where, "answers", list)):
        spot = f"{where}.answers[{k}]"
        text, start = check.field(answer, spot, "text", str), check.field(answer, spot, "answer_start", int)
        if not 0 <= start <= start + len(text) <= len(context) or not text:
            check.fail(spot, f"answer_start {start} and {len(text)} characters fall outside the "
                             f"{len(context)}-character context")
        answers.append(Answer(text, start))
    if qa.get("is_impossible") is True:
        return []  # v2.0 keeps "plausible_answers" apart; "answers" is empty already
    return answers


def _from_json(path: Path, data) -> SquadSet:
    check = _Checker(path)
    squad = SquadSet(path)
    for i, article in enumerate(check.field(data, "top level", "data", list)):
        for j, paragraph in enumerate(check.field(article, f"data[{i}]", "paragraphs", list)):
            where = f"data[{i}].paragraphs[{j}]"
            context = check.field(paragraph, where, "context", str)
            squad.contexts.append(context)
            for k, qa in enumerate(check.field(paragraph, where, "qas", list)):
                spot = f"{where}.qas[{k}]"
                qid = check.field(qa, spot, "id", (str, int))
                question = check.field(qa, spot, "question", str)
                answers = _answers(check, qa, spot, context)
                squad.questions.append(Question(str(qid), question, len(squad.contexts) - 1, answers))
    return squad


def _from_parquet(path: Path) -> SquadSet:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(path, columns=["id", "context", "question", "answers"])
    except (pa.ArrowException, OSError, KeyError) as exc:
        message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise DataError(f"cannot read {path}: not the Hub's SQuAD Parquet (id, context, question, answers): "
                        f"{message}") from None
    check = _Checker(path)
    squad, paragraph_of = SquadSet(path), {}
    for row_number, row in enumerate(table.to_pylist()):
        where = f"row {row_number}"
        context = check.field(row, where, "context", str)
        if context not in paragraph_of:
            paragraph_of[context] = len(squad.contexts)
            squad.contexts.append(context)
        spans = check.field(row, where, "answers", dict)
        texts, starts = spans.get("text") or [], spans.get("answer_start") or []
        if len(texts) != len(starts):
            check.fail(f"{where}.answers", f"{len(texts)} texts but {len(starts)} answer_start values")
        qa = {"answers": [{"text": t, "answer_start": s} for t, s in zip(texts, starts, strict=True)]}
        answers = _answers(check, qa, where, context)
        qid, text = check.field(row, where, "id", (str, int)), check.field(row, where, "question", str)
        squad.questions.append(Question(str(qid), text, paragraph_of[context], answers))
    return squad


def _check_questions(squad: SquadSet, version_2: bool) -> None:
    seen: set[str] = set()
    for q in squad.questions:
        if q.qid in seen:
            raise DataError(f"{squad.path}: question id {q.qid!r} appears twice; ids must be unique")
        seen.add(q.qid)
        if q.impossible and not version_2:
            raise DataError(f"{squad.path}: question {q.qid!r} has no answer; for SQuAD 2.0 data (questions "
                            "without an answer) pass --version-2-with-negative")
    if not squad.questions:
        raise DataError(f"{squad.path} holds no questions")


def read_squad(path: str | Path, version_2: bool) -> SquadSet:
    path = Path(path).expanduser()
    if path.suffix.lower() == ".parquet":
        squad = _from_parquet(path)
    else:
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError) as exc:
            raise DataError(f"cannot read {path}: {exc}") from None
        except json.JSONDecodeError as exc:
            raise DataError(f"{path} is not JSON (line {exc.lineno}, column {exc.colno}: {exc.msg}); SQuAD "
                            "files are the JSON of rajpurkar.github.io, or the Hub's Parquet") from None
        squad = _from_json(path, data)
    _check_questions(squad, version_2)
    log.info("%s: %d questions on %d paragraphs (%d without an answer)", path, len(squad.questions),
             len(squad.contexts), sum(q.impossible for q in squad.questions))
    return squad

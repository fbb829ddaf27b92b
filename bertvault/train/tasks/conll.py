"""Tagged sentences for token classification: CoNLL-style text files and JSON Lines.

CoNLL style (CoNLL-2003, WNUT, OntoNotes exports ...): one token per line, columns separated by
whitespace, the token in the first column and its tag in the last (columns between, such as
part-of-speech and chunk tags, are ignored); a blank line ends a sentence; `-DOCSTART-` lines are
skipped. A file without tags (to predict) has the token alone on each line.

JSON Lines: one sentence per line, {"tokens": [...], "tags": [...]} (tags left out to predict).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from bertvault.errors import DataError
from bertvault.train.tables import jsonl_items

DOCSTART = "-DOCSTART-"


@dataclass
class Sentence:
    words: list[str]
    tags: list[str] | None
    line: int  # where it starts in its file (1-based), for messages


def _text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"cannot read {path}: {exc}") from None


def _close(sentences: list[Sentence], words: list[str], tags: list[str], first: int, tagged: bool) -> None:
    if words:
        sentences.append(Sentence(list(words), list(tags) if tagged else None, first))
    words.clear()
    tags.clear()


def read_conll(path: Path, need_tags: bool) -> list[Sentence]:
    sentences: list[Sentence] = []
    words: list[str] = []
    tags: list[str] = []
    first, tagged = 0, None
    for number, line in enumerate(_text(path).splitlines(), start=1):
        cells = line.split()
        if not cells:
            _close(sentences, words, tags, first, bool(tagged))
            continue
        if cells[0] == DOCSTART:
            continue
        has_tag = len(cells) > 1
        if need_tags and not has_tag:
            raise DataError(f"{path} line {number}: the token alone; every line needs its tag in the last "
                            "column")
        if tagged is None:
            tagged = has_tag
        if has_tag != tagged:
            found, before = ("a tag", "none") if has_tag else ("no tag", "one")
            raise DataError(f"{path} line {number}: {found} where the lines before have {before}")
        if not words:
            first = number
        words.append(cells[0])
        tags.append(cells[-1])
    _close(sentences, words, tags, first, bool(tagged))
    return sentences


def _jsonl_sentence(path: Path, number: int, item, need_tags: bool) -> Sentence | None:
    where = f"{path} line {number}"
    if not isinstance(item, dict) or not isinstance(item.get("tokens"), list):
        raise DataError(f"{where}: expected an object with a \"tokens\" list (and \"tags\")")
    words, tags = item["tokens"], item.get("tags")
    if tags is None and need_tags:
        raise DataError(f"{where}: no \"tags\"; each sentence needs a tag per token")
    if not all(isinstance(value, str) for value in [*words, *(tags or [])]):
        raise DataError(f"{where}: tokens and tags must be strings (tags such as \"B-PER\", not label ids)")
    if tags is not None and len(tags) != len(words):
        raise DataError(f"{where}: {len(words)} tokens but {len(tags)} tags")
    return Sentence(words, tags, number) if words else None


def read_jsonl(path: Path, need_tags: bool) -> list[Sentence]:
    sentences = []
    for number, item in jsonl_items(path, _text(path)):
        sentence = _jsonl_sentence(path, number, item, need_tags)
        if sentence is not None:
            sentences.append(sentence)
    return sentences


READERS = {".jsonl": read_jsonl, ".json": read_jsonl, ".ndjson": read_jsonl}


def read_tagged(path: str | Path, need_tags: bool = True) -> list[Sentence]:
    """Sentences of a CoNLL-style or JSONL file (by suffix: .jsonl/.json/.ndjson, else CoNLL)."""
    path = Path(path).expanduser()
    sentences = READERS.get(path.suffix.lower(), read_conll)(path, need_tags)
    if not sentences:
        raise DataError(f"{path} holds no sentences")
    return sentences


def write_conll(sentences: list[Sentence], *columns: list[list[str]]) -> str:
    """CoNLL text: each word with the given columns (e.g. gold and predicted tags, as conlleval reads)."""
    blocks = []
    for k, sentence in enumerate(sentences):
        rows = zip(sentence.words, *(column[k] for column in columns), strict=True)
        blocks.append("".join(" ".join(row) + "\n" for row in rows))
    return "\n".join(blocks)

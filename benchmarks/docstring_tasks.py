"""Finetuning data made offline from real English: SQuAD v1.1 JSON and GLUE-format folders.

The text is the prose of Python's standard-library docstrings (sentences of 8-40 words of some
forty modules and their classes and functions), the same on every machine with the same Python.
None of it is SQuAD or GLUE: the files only have their layouts, so that `bertvault finetune --task
squad` and `bertvault evaluate glue` read them as they read the published ones. What each holds:

- squad: paragraphs of shuffled sentences (lengths drawn around SQuAD's: a median of ~110 words, a
  few of 300-500 that need several windows), five questions on each: a sentence of the paragraph
  with a span of one to three words turned into "what" (the span is the answer).
- glue_data/CoLA (no header): a sentence as written (1), or with three of its words moved (0).
- glue_data/SST-2: the demo's sentiment sentences (bertvault/demo/task.py), with negations.
- glue_data/MRPC: a sentence and itself with a fifth of its words dropped (1), or another sentence
  of the same module's documentation, cut the same way (0).
- glue_data/STS-B: a sentence and itself with a share p of its words replaced by words of another
  sentence; the score is 5 x (1 - p).
- glue_data/RTE: a sentence and six or more consecutive words of it (entailment) or of another
  sentence of the same module (not_entailment).

    python benchmarks/docstring_tasks.py squad OUT [--questions 400] [--eval-questions 100]
    python benchmarks/docstring_tasks.py glue OUT [--train 400] [--dev 100]
"""

from __future__ import annotations

import argparse
import importlib
import inspect
import json
import math
import random
import re
import sys
import warnings
from pathlib import Path

MODULES = ("argparse", "asyncio", "bisect", "calendar", "collections", "csv", "datetime", "decimal",
           "email.message", "fractions", "functools", "glob", "heapq", "http.client", "inspect", "itertools",
           "json", "logging", "os", "pathlib", "pickle", "random", "re", "shutil", "socket", "sqlite3",
           "statistics", "string", "subprocess", "tarfile", "tempfile", "textwrap", "threading", "typing",
           "unittest", "urllib.request", "zipfile")
SENTENCE_END = re.compile(r"(?<=[.!?])\s+")
QUESTIONS_PER_PARAGRAPH = 5


# --- the text ----------------------------------------------------------------------------------------------

def module_sentences() -> dict[str, list[str]]:
    """Per module: the prose sentences (8-40 words) of its docstrings, each sentence once overall."""
    seen: set[str] = set()
    found: dict[str, list[str]] = {}
    for name in MODULES:
        module = importlib.import_module(name)
        with warnings.catch_warnings():  # getmembers touches deprecated aliases (typing.re, ...)
            warnings.simplefilter("ignore", DeprecationWarning)
            objects = [module] + [obj for _, obj in inspect.getmembers(module)
                                  if inspect.isfunction(obj) or inspect.isclass(obj)]
            objects += [m for obj in objects if inspect.isclass(obj)
                        for _, m in inspect.getmembers(obj, inspect.isfunction)]
            docs = [inspect.getdoc(obj) or "" for obj in objects]
        found[name] = []
        for doc in docs:
            for block in doc.split("\n\n"):
                if ">>>" in block or block.lstrip().startswith(("-", "*", ":")):
                    continue  # examples and lists are not prose
                for text in SENTENCE_END.split(" ".join(block.split())):
                    whole = text.count("(") == text.count(")")  # not cut at an "e.g."
                    if 8 <= len(text.split()) <= 40 and text[0].isupper() and text.endswith(".") and whole \
                            and text not in seen:
                        seen.add(text)
                        found[name].append(text)
    return found


def sentences() -> list[str]:
    return [s for group in module_sentences().values() for s in group]


# --- SQuAD -------------------------------------------------------------------------------------------------

def question_about(sentence: str, rng: random.Random) -> tuple[str, int, str] | None:
    """(question, the answer's character offset in the sentence, answer): one to three words of the
    sentence, alphabetic and not the first, replaced by "what"."""
    words = sentence.split(" ")
    spots = [i for i in range(1, len(words) - 1) if words[i].isalpha() and len(words[i]) > 3]
    if not spots:
        return None
    first = rng.choice(spots)
    last = first
    while last + 1 < len(words) - 1 and words[last + 1].isalpha() and rng.random() < 0.4 and last - first < 2:
        last += 1
    answer = " ".join(words[first : last + 1])
    question = " ".join([*words[:first], "what", *words[last + 1 :]]).rstrip(".") + "?"
    return question, len(" ".join(words[:first])) + 1, answer


def squad_set(pool: list[str], questions: int, seed: int) -> dict:
    """SQuAD v1.1 JSON: paragraphs of pool sentences, QUESTIONS_PER_PARAGRAPH questions on each."""
    rng = random.Random(seed)
    order = rng.sample(pool, len(pool))
    paragraphs, asked, next_sentence = [], 0, 0
    while asked < questions:
        target = min(500, max(40, int(rng.lognormvariate(math.log(110), 0.45))))
        chosen, words = [], 0
        while words < target:
            chosen.append(order[next_sentence % len(order)])
            next_sentence += 1
            words += len(chosen[-1].split())
        starts = [sum(len(s) + 1 for s in chosen[:k]) for k in range(len(chosen))]
        qas = []
        for k in rng.sample(range(len(chosen)), min(len(chosen), QUESTIONS_PER_PARAGRAPH, questions - asked)):
            made = question_about(chosen[k], rng)
            if made:
                text, at, answer = made
                qas.append({"id": f"s{seed}-q{asked}", "question": text,
                            "answers": [{"text": answer, "answer_start": starts[k] + at}]})
                asked += 1
        paragraphs.append({"context": " ".join(chosen), "qas": qas})
    return {"version": "1.1", "data": [{"title": "docstrings", "paragraphs": paragraphs}]}


def write_squad(folder: Path, train_questions: int, eval_questions: int) -> tuple[Path, Path]:
    """train-v1.1.json and dev-v1.1.json; the two share no paragraph."""
    pool = sentences()
    half = len(pool) * 4 // 5  # train paragraphs from the first 80% of the sentences, dev from the rest
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, count, seed, part in (("train-v1.1.json", train_questions, 1, pool[:half]),
                                    ("dev-v1.1.json", eval_questions, 2, pool[half:])):
        paths.append(folder / name)
        paths[-1].write_text(json.dumps(squad_set(part, count, seed)), encoding="utf-8")
    return paths[0], paths[1]


# --- GLUE's layouts ----------------------------------------------------------------------------------------

def drop_words(sentence: str, share: float, rng: random.Random) -> str:
    words = sentence.split()
    keep = sorted(rng.sample(range(len(words)), max(1, round(len(words) * (1 - share)))))
    return " ".join(words[i] for i in keep)


def cola(sentence: str, other: str, rng: random.Random) -> list[str]:
    label = rng.randint(0, 1)
    words = sentence.split()
    if not label:
        for _ in range(3):
            words.insert(rng.randrange(len(words)), words.pop(rng.randrange(len(words))))
    return ["docs", str(label), "" if label else "*", " ".join(words)]


def mrpc(sentence: str, other: str, rng: random.Random) -> list[str]:
    label = rng.randint(0, 1)
    return [str(label), "0", "0", sentence, drop_words(sentence if label else other, 0.2, rng)]


def stsb(sentence: str, other: str, rng: random.Random) -> list[str]:
    words, others = sentence.split(), other.split()
    share = rng.choice((0.0, 0.2, 0.4, 0.6, 0.8, 1.0))
    for i in rng.sample(range(len(words)), round(len(words) * share)):
        words[i] = rng.choice(others)
    return [sentence, " ".join(words), f"{5 * (1 - share):.1f}"]


def rte(sentence: str, other: str, rng: random.Random) -> list[str]:
    entailed = rng.random() < 0.5
    words = (sentence if entailed else other).split()
    start = rng.randrange(len(words) - 5)
    piece = " ".join(words[start : start + rng.randint(6, min(12, len(words) - start))])
    return ["0", sentence, piece, "entailment" if entailed else "not_entailment"]


PAIR_TASKS = {  # glue_data folder: (header, row maker)
    "CoLA": (None, cola),
    "MRPC": (["Quality", "#1 ID", "#2 ID", "#1 String", "#2 String"], mrpc),
    "STS-B": (["sentence1", "sentence2", "score"], stsb),
    "RTE": (["index", "sentence1", "sentence2", "label"], rte),
}


def write_tsv(path: Path, header: list[str] | None, rows: list[list[str]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = (["\t".join(header)] if header else []) + ["\t".join(row) for row in rows]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def write_glue(root: Path, train: int, dev: int) -> Path:
    """root/glue_data/{CoLA,SST-2,MRPC,STS-B,RTE}/{train,dev}.tsv; dev rows from other modules' text."""
    from bertvault.demo.task import write_split

    groups = module_sentences()
    names = sorted(groups)
    held_out = set(names[::5])  # every fifth module's sentences make the dev sets
    glue = root / "glue_data"
    for folder, (header, make) in PAIR_TASKS.items():
        rng = random.Random(folder)
        for split, count in (("train", train), ("dev", dev)):
            modules = [n for n in names if (n in held_out) == (split == "dev") and len(groups[n]) > 1]
            rows = []
            for _ in range(count):
                module = rng.choice(modules)
                sentence, other = rng.sample(groups[module], 2)
                rows.append(make(sentence, other, rng))
            write_tsv(glue / folder / f"{split}.tsv", header, rows)
    write_split(glue / "SST-2" / "train.tsv", train, seed=11)
    write_split(glue / "SST-2" / "dev.tsv", dev, seed=12)
    return glue


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("kind", choices=("squad", "glue"))
    parser.add_argument("out", type=Path)
    parser.add_argument("--questions", type=int, default=400, help="squad: training questions")
    parser.add_argument("--eval-questions", type=int, default=100, help="squad: eval questions")
    parser.add_argument("--train", type=int, default=400, help="glue: training rows per task")
    parser.add_argument("--dev", type=int, default=100, help="glue: dev rows per task")
    args = parser.parse_args()
    if args.kind == "squad":
        written = write_squad(args.out, args.questions, args.eval_questions)
    else:
        written = (write_glue(args.out, args.train, args.dev),)
    for path in written:
        print(path)


if __name__ == "__main__":
    sys.exit(main())

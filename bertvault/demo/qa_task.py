"""A small extractive question-answering task for the demo (SQuAD v1.1's JSON layout), and the answer an
exported model gives.

Each context is one to three of the classification task's sentences with two more put among them:
a fact, "the monk was laura .", and a distractor, "cassius saw the ship .", which names someone
else. The question asks for the role ("who was the monk ?"); the answer is the name after "the
<role> was", so pointing at any name is right only half the time: the model has to learn where the
answer stands. Roles and names are words of the demo vocab. Deterministic for a seed.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

from bertvault.demo.task import LEXICON, sentence

ROLES = ["guide", "monk", "guardian", "neighbor", "sage", "jeweler"]
NAMES = ["philammon", "hypatia", "cassius", "laura", "cass"]


def example(rng: random.Random) -> tuple[str, str, str, int]:
    """(context, question, answer, the answer's character offset)."""
    role = rng.choice(ROLES)
    name, other = rng.sample(NAMES, 2)
    parts = [sentence(rng)[0] for _ in range(rng.randint(1, 3))]
    parts.insert(rng.randint(0, len(parts)), f"{other} saw {rng.choice(LEXICON['subjects'])} .")
    fact = f"the {role} was {name} ."
    parts.insert(rng.randint(0, len(parts)), fact)
    context = " ".join(parts)
    start = context.index(fact) + len(fact) - len(name) - 2
    return context, f"who was the {role} ?", name, start


def write_split(path: Path, count: int, seed: int) -> Path:
    rng = random.Random(seed)
    paragraphs = []
    for i in range(count):
        context, question, answer, start = example(rng)
        qa = {"id": f"demo-{seed}-{i}", "question": question,
              "answers": [{"text": answer, "answer_start": start}]}
        paragraphs.append({"context": context, "qas": [qa]})
    path.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps({"version": "1.1", "data": [{"title": "demo", "paragraphs": paragraphs}]}, indent=1)
    path.write_text(text + "\n", encoding="utf-8")
    return path


def write_task(folder: Path, train: int = 600, dev: int = 100) -> tuple[Path, Path]:
    """train-v1.1.json and dev-v1.1.json in `folder`."""
    return (write_split(folder / "train-v1.1.json", train, seed=3),
            write_split(folder / "dev-v1.1.json", dev, seed=4))


def first_question(path: Path) -> tuple[str, str, str]:
    """(context, question, answer) of a split's first question."""
    paragraph = json.loads(path.read_text(encoding="utf-8"))["data"][0]["paragraphs"][0]
    qa = paragraph["qas"][0]
    return paragraph["context"], qa["question"], qa["answers"][0]["text"]


def answer(model_dir: Path, question: str, context: str) -> tuple[str, float]:
    """The exported model's answer, read as transformers users read one: AutoTokenizer and
    AutoModelForQuestionAnswering from the folder, the best span of the context (start <= end,
    15 tokens at most), and its text by the tokenizer's character offsets; with its probability."""
    import torch
    from transformers import AutoModelForQuestionAnswering, AutoTokenizer
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForQuestionAnswering.from_pretrained(model_dir).eval()
    encoded = tokenizer(question, context, return_offsets_mapping=True, return_tensors="pt")
    offsets = encoded.pop("offset_mapping")[0].tolist()
    with torch.no_grad():
        output = model(**encoded)
    start, end = (logits[0].log_softmax(-1) for logits in (output.start_logits, output.end_logits))
    in_context = torch.tensor([s == 1 for s in encoded.sequence_ids(0)])
    scores = start[:, None] + end[None, :]
    allowed = in_context[:, None] & in_context[None, :]
    allowed &= torch.ones_like(allowed).triu() & ~torch.ones_like(allowed).triu(15)
    best = int(scores.masked_fill(~allowed, -torch.inf).argmax())
    first, last = divmod(best, scores.shape[1])
    return context[offsets[first][0] : offsets[last][1]], float(scores[first, last].exp())


if __name__ == "__main__":
    import sys

    for p in write_task(Path(sys.argv[1] if len(sys.argv) > 1 else "demo-qa")):
        print(p)

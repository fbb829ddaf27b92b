"""A small sentence-classification task for the demo's finetuning step (GLUE SST-2's TSV layout).

Sentences say whether something was good or bad, with the sentiment word anywhere in a sentence
of neutral words, sometimes negated ("not"), so that a bag of words alone is not enough.
Deterministic for a seed.
"""

from __future__ import annotations

import random
from pathlib import Path

LEXICON = {
    "positive": ["good", "great", "fine", "pleasant", "excellent", "wonderful", "happy", "lovely"],
    "negative": ["bad", "poor", "awful", "terrible", "sad", "dreadful", "ugly", "horrible"],
    "subjects": ["the house", "the ship", "the letter", "the journey", "the dinner", "the story", "the room",
                 "the garden", "the voyage", "the town", "the book", "the morning"],
    "links": ["was", "seemed", "looked", "felt", "proved"],
    "tails": ["", "to him", "to all of us", "that day", "in the end", "for a while"],
}


def sentence(rng: random.Random) -> tuple[str, int]:
    label = rng.randint(0, 1)
    negated = rng.random() < 0.25
    word = rng.choice(LEXICON["positive" if label != negated else "negative"])
    words = [rng.choice(LEXICON["subjects"]), rng.choice(LEXICON["links"]), *(["not"] if negated else []),
             word, rng.choice(LEXICON["tails"])]
    return " ".join(w for w in words if w) + " .", label


def write_split(path: Path, count: int, seed: int) -> Path:
    rng = random.Random(seed)
    rows = ["sentence\tlabel", *(f"{s}\t{y}" for s, y in (sentence(rng) for _ in range(count)))]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")
    return path


def write_task(folder: Path, train: int = 600, dev: int = 200) -> tuple[Path, Path]:
    """train.tsv and dev.tsv in `folder`."""
    return write_split(folder / "train.tsv", train, seed=1), write_split(folder / "dev.tsv", dev, seed=2)


if __name__ == "__main__":
    import sys

    for p in write_task(Path(sys.argv[1] if len(sys.argv) > 1 else "demo-task")):
        print(p)

"""The embedded demo checkpoint: a tiny BERT in google-research/bert's TF1 zip layout.

Built reproducibly from the project's own files: the vocab comes from the sample corpus and the
demo task's words, the weights from a fixed seed, and the zip has fixed timestamps and order.
The built zip ships in `manifests/mirror/` and the built-in manifest pins its sha256, so
`bertvault pull bert-demo-tiny` verifies it like any published artifact.

    python -m bertvault.demo.build [--out manifests/mirror/bert-demo-tiny.zip]
"""

from __future__ import annotations

import argparse
import re
import tempfile
import zipfile
from collections import Counter
from pathlib import Path

from bertvault.demo.task import LEXICON

NAME = "bert_demo_L-2_H-64_A-4"
SEED = 20181011  # the day BERT's paper appeared
ARCHITECTURE = {
    "vocab_size": None,  # set from the vocab
    "hidden_size": 64,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "intermediate_size": 256,
    "hidden_act": "gelu",
    "hidden_dropout_prob": 0.1,
    "attention_probs_dropout_prob": 0.1,
    "max_position_embeddings": 128,
    "type_vocab_size": 2,
    "initializer_range": 0.02,
}
SPECIAL = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
CORPUS = Path(__file__).resolve().parents[1] / "resources" / "sample_text.txt"
_WORD = re.compile(r"\w+|[^\w\s]", re.UNICODE)


def build_vocab(corpus: Path = CORPUS, min_count: int = 1) -> list[str]:
    """Special tokens, every character (alone and as a ##piece), then frequent lower-cased words."""
    text = corpus.read_text(encoding="utf-8").lower()
    words = Counter(_WORD.findall(text))
    for word in (w for group in LEXICON.values() for w in group):
        words[word] += min_count
    chars = sorted({c for w in words for c in w})
    frequent = sorted((w for w, n in words.items() if n >= min_count and len(w) > 1),
                      key=lambda w: (-words[w], w))
    return [*SPECIAL, *chars, *(f"##{c}" for c in chars), *frequent]


def build(out: Path) -> Path:
    """Write the demo zip to `out` (atomically) and return it."""
    import torch
    from transformers import BertConfig, BertForPreTraining

    from bertvault.convert import export_tf1, from_state_dict

    with tempfile.TemporaryDirectory(prefix="bertvault-demo-") as scratch:
        vocab = build_vocab()
        vocab_path = Path(scratch) / "vocab.txt"
        vocab_path.write_text("\n".join(vocab) + "\n", encoding="utf-8")
        config = {**ARCHITECTURE, "vocab_size": len(vocab)}
        torch.manual_seed(SEED)
        model = BertForPreTraining(BertConfig(**config))
        folder = Path(scratch) / NAME
        export_tf1(from_state_dict(model.state_dict(), config, vocab_path, lowercase=True), folder)

        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.with_name(f".{out.name}.tmp")
        with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=9) as archive:
            for file in sorted(folder.iterdir()):
                if file.name == "provenance.json":
                    continue  # it records when and how it was built: not reproducible
                info = zipfile.ZipInfo(f"{NAME}/{file.name}", date_time=(2018, 10, 11, 0, 0, 0))
                info.compress_type = zipfile.ZIP_DEFLATED
                info.external_attr = 0o644 << 16
                archive.writestr(info, file.read_bytes())
        tmp.replace(out)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    default = Path(__file__).resolve().parents[2] / "manifests" / "mirror" / "bert-demo-tiny.zip"
    parser.add_argument("--out", type=Path, default=default)
    args = parser.parse_args()
    path = build(args.out)
    import hashlib

    print(f"{path} sha256 {hashlib.sha256(path.read_bytes()).hexdigest()} size {path.stat().st_size}")


if __name__ == "__main__":
    main()

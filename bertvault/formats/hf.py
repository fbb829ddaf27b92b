"""Hugging Face model folders: config.json + weights + vocab.txt + tokenizer files.

What `transformers.AutoModel*.from_pretrained(folder)` and `AutoTokenizer.from_pretrained(folder)`
load. Written weights are safetensors (sharded past max_shard_size) with the tied decoder left out,
as transformers itself saves them.
"""

from __future__ import annotations

from pathlib import Path

from bertvault.errors import ConversionError
from bertvault.formats import pt, safetensors, sidecars, tokenizer
from bertvault.formats.base import TensorSource, WriteJob

# In the order transformers prefers them.
WEIGHT_FILES = (safetensors.INDEX, safetensors.WEIGHTS, pt.INDEX, pt.WEIGHTS)


def weights_in(folder: Path) -> Path | None:
    return next((folder / name for name in WEIGHT_FILES if (folder / name).is_file()), None)


def read(folder: Path) -> TensorSource:
    weights = weights_in(folder) if folder.is_dir() else folder
    if weights is None:
        raise ConversionError(f"{folder} holds none of {', '.join(WEIGHT_FILES)}")
    if weights.name.startswith("model.safetensors") or weights.suffix == ".safetensors":
        return safetensors.read(weights)
    return pt.read(weights)


def write(dest: Path, job: WriteJob) -> None:
    if job.vocab_path is None:
        raise ConversionError(
            "an hf model folder needs vocab.txt and none was found beside the source; pass --vocab FILE"
        )
    dest.mkdir(parents=True, exist_ok=True)
    safetensors.write_weights(dest, job)
    sidecars.write_hf_config(dest, job.config)
    tokenizer.write_files(dest, job.vocab_path, bool(job.lowercase), job.config["max_position_embeddings"])

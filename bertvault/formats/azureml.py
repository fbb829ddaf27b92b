"""AzureML-BERT encoder checkpoints: torch.save of a BertModel state dict, no heads, no config.

Reading is the `pt` reader (the names are HF BertModel names); the config comes from the manifest's
architecture and the vocab from its `vocab_from` artifact when nothing lies beside the file.
"""

from __future__ import annotations

from pathlib import Path

from bertvault.formats import pt, sidecars
from bertvault.formats.base import WriteJob

WEIGHTS = "bert_encoder.pt"
read = pt.read
from_object = pt.from_object


def sniff(obj: object, path: Path) -> bool:
    """AzureML-BERT publishes its encoders as bert_encoder*.pt; by content they are plain state dicts."""
    return path.name.startswith("bert_encoder")


def write(dest: Path, job: WriteJob) -> None:
    if job.single_file:
        pt.save_state_dict(dest, job.tensors)
        return
    dest.mkdir(parents=True, exist_ok=True)
    pt.save_state_dict(dest / WEIGHTS, job.tensors)
    sidecars.write_hf_config(dest, job.config)
    sidecars.copy_vocab(dest, job.vocab_path, required=False, fmt="azureml-pt")

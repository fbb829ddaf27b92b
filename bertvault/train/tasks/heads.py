"""Task heads on a BERT encoder, built from canonical weights, and the finished model written out.

Each head is a transformers class; the encoder (`bert.*`) comes from the checkpoint and the head
starts fresh, as google-research/bert's run_classifier.py and run_squad.py start theirs:

    sequence  BertForSequenceClassification  [CLS] pooled -> labels (or one value for regression)
    span      BertForQuestionAnswering       every token -> start and end logits (SQuAD)
    token     BertForTokenClassification     every token -> a tag (NER and other taggers)

`export_hf` writes a folder that the matching `AutoModelFor...` and `AutoTokenizer` load;
`export_tf1` a google-research/bert checkpoint, whose head names come from converters/tf1.toml
(`output_weights`/`output_bias` for a classifier, `cls/squad/output_weights`/`output_bias` for
SQuAD), so that run_classifier.py and run_squad.py can load it.
"""

from __future__ import annotations

import copy
import logging
from pathlib import Path

from bertvault.errors import TrainingError
from bertvault.formats.tokenizer import write_files
from bertvault.io.atomic import atomic_output
from bertvault.train import checkpoint_io, config

log = logging.getLogger(__name__)

HEADS = {
    "sequence": "BertForSequenceClassification",
    "span": "BertForQuestionAnswering",
    "token": "BertForTokenClassification",
}
# Heads a google-research/bert script reads back from a TF1 checkpoint.
TF1_HEADS = ("sequence", "span")
# Fields a source config may carry from an earlier finetune; the new head sets its own.
_HEAD_FIELDS = ("architectures", "id2label", "label2id", "num_labels", "problem_type", "finetuning_task")


def label_fields(names: list[str]) -> dict:
    """The config fields that name the labels (transformers writes id2label keys as strings)."""
    return {"num_labels": len(names), "id2label": dict(enumerate(names)),
            "label2id": {name: i for i, name in enumerate(names)}}


def build(source: checkpoint_io.ModelSource, head: str, dropout: float | None, **fields):
    """The head's model with the checkpoint's encoder weights; `fields` go into its config."""
    import transformers
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    cls = getattr(transformers, HEADS[head])
    values = {k: v for k, v in source.config.items() if not k.startswith("_") and k not in _HEAD_FIELDS}
    if dropout is not None:
        values["hidden_dropout_prob"] = values["attention_probs_dropout_prob"] = dropout
    values.update(fields, architectures=[cls.__name__])
    model = cls._from_config(transformers.BertConfig(**values), attn_implementation="sdpa")
    encoder = {k: v for k, v in source.state_dict.items() if k.startswith("bert.")}
    wanted = model.state_dict()
    # A head without a pooler (span, token) leaves the checkpoint's pooler out.
    missing, _ = model.load_state_dict({k: v for k, v in encoder.items() if k in wanted}, strict=False)
    lost = [k for k in missing if k.startswith(("bert.encoder", "bert.embeddings.word"))]
    if lost:
        raise TrainingError(f"{source.name}: the checkpoint lacks encoder weights ({', '.join(lost[:4])})")
    return model


def export_hf(model, source: checkpoint_io.ModelSource, lowercase: bool, settings, target: Path) -> Path:
    """An HF folder for AutoModelFor<head> + AutoTokenizer (and the run's settings), written atomically."""
    model = copy.deepcopy(model).cpu()
    with atomic_output(target) as tmp:
        model.save_pretrained(tmp)
        write_files(tmp, source.vocab_path, lowercase, settings.max_seq_len)
        config.save(settings, tmp / "finetune_settings.toml")
    return target


def export_tf1(model, head: str, source: checkpoint_io.ModelSource, lowercase: bool, target: Path) -> Path:
    if head not in TF1_HEADS:
        raise TrainingError(f"--export tf1: no google-research/bert script reads a {HEADS[head]} head; "
                            "use the HF folder in OUT/model")
    return checkpoint_io.export_tf1(copy.deepcopy(model).cpu(), source.vocab_path, lowercase, target)

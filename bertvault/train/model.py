"""The pretraining module: BERT's encoder, the MLM head on the masked positions only, the NSP head.

Running the vocabulary projection on every token costs ~6·h·V FLOPs per position; BERT only
needs it at the ~15% of positions that were masked. We gather those hidden states first
(`masked_lm_positions`, fixed-size per example so shapes stay static for XLA and compile), then
call `cls.predictions` and `cls.seq_relationship` of the same `BertForPreTraining`, so the
checkpoint's heads are the ones trained and exported.

The module returns sums and counts, not means: the loop divides by counts taken over the whole
global batch (every micro-batch and rank), so that N ranks × B/N examples give the same loss and
gradients as one process with B.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F


class PretrainingSums(NamedTuple):
    mlm_loss: torch.Tensor  # summed over weighted masked positions
    mlm_correct: torch.Tensor
    nsp_loss: torch.Tensor  # summed over sequences
    nsp_correct: torch.Tensor


class PretrainingModel(torch.nn.Module):
    def __init__(self, bert_for_pretraining: torch.nn.Module):
        super().__init__()
        self.net = bert_for_pretraining

    @property
    def config(self):
        return self.net.config

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, token_type_ids: torch.Tensor,
                masked_lm_positions: torch.Tensor, masked_lm_ids: torch.Tensor,
                masked_lm_weights: torch.Tensor, next_sentence_label: torch.Tensor) -> PretrainingSums:
        sequence, pooled = self.net.bert(
            input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids, return_dict=False
        )[:2]
        hidden = sequence.size(-1)
        index = masked_lm_positions.unsqueeze(-1).expand(-1, -1, hidden)
        masked_hidden = sequence.gather(1, index).reshape(-1, hidden)  # [batch · max_predictions, hidden]
        logits = self.net.cls.predictions(masked_hidden).float()
        targets = masked_lm_ids.reshape(-1)
        weights = masked_lm_weights.reshape(-1).to(logits.dtype)
        mlm = F.cross_entropy(logits, targets, reduction="none")
        nsp_logits = self.net.cls.seq_relationship(pooled).float()
        nsp_labels = next_sentence_label.reshape(-1)
        return PretrainingSums(
            mlm_loss=(mlm * weights).sum(),
            mlm_correct=((logits.argmax(-1) == targets).to(weights.dtype) * weights).sum(),
            nsp_loss=F.cross_entropy(nsp_logits, nsp_labels, reduction="sum"),
            nsp_correct=(nsp_logits.argmax(-1) == nsp_labels).sum().to(weights.dtype),
        )

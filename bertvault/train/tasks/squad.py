"""`--task squad`: extractive question answering on SQuAD v1.1 or v2.0, as google-research/bert does it.

Files: SQuAD JSON as published, or the Hub's Parquet (squad_data.py). Features, answer spans and
windows as run_squad.py builds them (squad_features.py); BertForQuestionAnswering trained on the
mean of the start and end cross-entropies. Every epoch the eval windows are decoded into answers
(squad_decode.py) and scored exactly as the official scripts score them (squad_eval.py):

- v1.1: `exact` and `f1` (the v1.1 script's exact_match and f1), OUT/predictions.json and
  OUT/nbest_predictions.json as run_squad.py writes them;
- v2.0 (--version-2-with-negative): the no-answer threshold on `null_odds` is the one that gives
  the eval set its best F1, found as the official v2.0 script finds it (or
  --null-score-diff-threshold when given); `exact`, `f1`, `HasAns_*`, `NoAns_*` are the official
  scores of the predictions made with it, and OUT/null_odds.json is written too.
"""

from __future__ import annotations

import json
import logging

import numpy as np
import torch

from bertvault.data.tokenizer import LineEncoder
from bertvault.formats.tokenizer import build_tokenizer
from bertvault.formats.vocab import vocab_tokens
from bertvault.train.tasks import squad_eval
from bertvault.train.tasks.loop import Evaluation
from bertvault.train.tasks.squad_data import SquadSet, read_squad
from bertvault.train.tasks.squad_decode import BasicTokens, Decoded, Decoder
from bertvault.train.tasks.squad_features import Features, build_features, input_ids

log = logging.getLogger(__name__)

METRICS = ("f1", "exact")
# google-research/bert's README for SQuAD on BERT-Base: run_squad.py's flags.
DEFAULTS = {"max_seq_len": 384, "lr": 3e-5, "epochs": 2, "batch_size": 12}


def setting_problems(settings) -> list[str]:
    problems = []
    if settings.max_seq_len <= settings.max_query_len + 3:
        problems.append(f"--max-seq-len {settings.max_seq_len} leaves no room for the context after a "
                        f"{settings.max_query_len}-token question ([CLS] and two [SEP]); raise it above "
                        f"{settings.max_query_len + 3} or lower --max-query-len")
    if settings.test:
        problems.append("--test is not read by --task squad: OUT/predictions.json holds the answers to "
                        "--eval")
    return problems


class SquadTask:
    head = "span"

    def __init__(self, settings, sets: dict[str, SquadSet], features: dict[str, Features], decoder: Decoder,
                 special: dict[str, int]):
        self.settings, self.sets, self.features, self.decoder = settings, sets, features, decoder
        self.cls, self.sep, self.pad = special["[CLS]"], special["[SEP]"], special["[PAD]"]
        self.metric = settings.metric or METRICS[0]
        self.version_2 = settings.version_2_with_negative
        self.sources = [settings.train, settings.eval]

    def head_fields(self) -> dict:
        return {}

    def summary(self) -> dict:
        return {"version": "2.0" if self.version_2 else "1.1",
                "train_windows": len(self.features["train"]), "eval_windows": len(self.features["eval"]),
                "train_questions_left_out": self.features["train"].skipped}

    def size(self, split: str) -> int:
        return len(self.features[split]) if split in self.features else 0

    def lengths(self, split: str) -> np.ndarray:
        """Tokens of each window: [CLS] question [SEP] context [SEP]."""
        features = self.features[split]
        queries = np.array([len(q) for q in features.queries], dtype=np.int64)
        return queries[np.asarray(features.question, dtype=np.int64)] + np.asarray(features.length) + 3

    def batch(self, split: str, rows: np.ndarray, fixed_length: int | None) -> dict[str, torch.Tensor]:
        features = self.features[split]
        sequences = [input_ids(features, int(f), self.cls, self.sep) for f in rows]
        length = fixed_length or max(len(s) for s in sequences)
        ids = torch.full((len(rows), length), self.pad, dtype=torch.long)
        types = torch.zeros((len(rows), length), dtype=torch.long)
        mask = torch.zeros((len(rows), length), dtype=torch.long)
        for j, (f, sequence) in enumerate(zip(rows, sequences, strict=True)):
            ids[j, : len(sequence)] = torch.from_numpy(sequence)
            types[j, features.offset(int(f)) : len(sequence)] = 1
            mask[j, : len(sequence)] = 1
        batch = {"input_ids": ids, "token_type_ids": types, "attention_mask": mask}
        if split == "train":
            batch["start_positions"] = torch.tensor([features.start_position[f] for f in rows])
            batch["end_positions"] = torch.tensor([features.end_position[f] for f in rows])
        return batch

    def outputs(self, output, batch) -> list[np.ndarray]:
        logits = torch.stack([output.start_logits, output.end_logits], dim=1).float().cpu().numpy()
        lengths = batch["attention_mask"].sum(-1).tolist()
        return [row[:, :n] for row, n in zip(logits, lengths, strict=True)]

    def evaluate(self, outputs: list[np.ndarray]) -> Evaluation:
        decoded = self.decoder.decode(outputs)
        gold = self.sets["eval"].gold()
        if not self.version_2:
            report = squad_eval.evaluate_v1(gold, decoded.answers)
            scores = {"exact": report["exact_match"], "f1": report["f1"]}
            return Evaluation(scores, files(decoded, decoded.answers))
        threshold, best = self.threshold(decoded, gold)
        predictions = decoded.predictions(threshold)
        scores = {**squad_eval.evaluate_v2(gold, predictions), **best, "null_score_diff_threshold": threshold}
        scores.pop("total", None)
        return Evaluation({k: float(v) for k, v in scores.items() if not k.endswith("_total")},
                          files(decoded, predictions))

    def threshold(self, decoded: Decoded, gold: dict[str, list[str]]) -> tuple[float, dict[str, float]]:
        """The no-answer threshold: given, or the one with the eval set's best F1 (the v2.0 script's)."""
        report = squad_eval.evaluate_v2(gold, decoded.answers, na_probs=decoded.null_odds)
        best = {k: report[k] for k in ("best_exact", "best_exact_thresh", "best_f1", "best_f1_thresh")}
        given = self.settings.null_score_diff_threshold
        return (given if given is not None else best["best_f1_thresh"]), best


def files(decoded: Decoded, predictions: dict[str, str]) -> dict[str, str]:
    out = {"predictions.json": json.dumps(predictions, indent=2, ensure_ascii=False),
           "nbest_predictions.json": json.dumps(decoded.nbest, indent=2, ensure_ascii=False)}
    if decoded.null_odds:
        out["null_odds.json"] = json.dumps(decoded.null_odds, indent=2)
    return out


def prepare(settings, source, lowercase: bool) -> SquadTask:
    encoder = LineEncoder(source.vocab_path, lowercase)
    version_2 = settings.version_2_with_negative
    sets = {"train": read_squad(settings.train, version_2), "eval": read_squad(settings.eval, version_2)}
    shape = (settings.max_seq_len, settings.max_query_len, settings.doc_stride)
    features = {"train": build_features(sets["train"], encoder, *shape, training=True),
                "eval": build_features(sets["eval"], encoder, *shape, training=False)}
    log.info("SQuAD windows: %d for training, %d for evaluation", len(features["train"]),
             len(features["eval"]))
    tokens = vocab_tokens(source.vocab_path)
    basic = BasicTokens(build_tokenizer(source.vocab_path, lowercase))
    decoder = Decoder(sets["eval"], features["eval"], tokens, basic, settings.n_best, settings.max_answer_len,
                      version_2)
    special = {t: tokens.index(t) for t in ("[CLS]", "[SEP]", "[PAD]")}
    return SquadTask(settings, sets, features, decoder, special)

"""Load HF folders the way users do, in whichever transformers this interpreter has, and record what
comes out: `python hf_probe.py SPEC.json OUT_DIR`.

The conformance tests run it under transformers 4 (.venv-conformance) and transformers 5 (the main
.venv). SPEC lists items: {"name", "folder", "model_class", "hidden_act" (optional override),
"texts", "batch" (input_ids, attention_mask, token_type_ids as lists), "tf1" (optional: a TF1
prefix and bert_config.json for transformers 4's load_tf_weights_in_bert)}. For each item it writes
NAME.npz (model outputs) and NAME.json (token ids from the fast and the slow tokenizer, classes,
loading info).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import torch
import transformers


def _slow_tokenizer(folder: str):
    """The pure-Python tokenizer: transformers 4's use_fast=False, transformers 5's BertTokenizerLegacy."""
    tokenizer = transformers.AutoTokenizer.from_pretrained(folder, use_fast=False)
    if tokenizer.is_fast and hasattr(transformers, "BertTokenizerLegacy"):
        tokenizer = transformers.BertTokenizerLegacy.from_pretrained(folder)
    return tokenizer


def _outputs(model, batch: dict) -> dict[str, np.ndarray]:
    bert = model if isinstance(model, transformers.BertModel) else model.bert
    out = {}
    with torch.no_grad():
        base = bert(**batch)
        out["sequence"] = base.last_hidden_state
        if base.pooler_output is not None:
            out["pooled"] = base.pooler_output
        if not isinstance(model, transformers.BertModel):
            result = model(**batch)
            heads = (("prediction_logits", "mlm"), ("seq_relationship_logits", "nsp"), ("logits", "logits"))
            for key, name in heads:
                if getattr(result, key, None) is not None:
                    out[name] = getattr(result, key)
    return {k: v.float().numpy() for k, v in out.items()}


def _from_tf1(item: dict, batch: dict) -> dict[str, np.ndarray]:
    """transformers 4's own TF1 loader (google's names mapped by transformers, not by bertvault)."""
    from transformers.models.bert.modeling_bert import load_tf_weights_in_bert

    config = transformers.BertConfig.from_json_file(item["tf1"]["config"])
    if item.get("hidden_act"):
        config.hidden_act = item["hidden_act"]
    model = transformers.BertForPreTraining(config)
    load_tf_weights_in_bert(model, config, item["tf1"]["prefix"])
    return _outputs(model.eval(), batch)


def probe(item: dict, out: Path) -> None:
    model_class = getattr(transformers, item["model_class"])
    override = {"hidden_act": item["hidden_act"]} if item.get("hidden_act") else {}
    model, info = model_class.from_pretrained(item["folder"], output_loading_info=True, **override)
    batch = {k: torch.tensor(v) for k, v in item["batch"].items()}
    arrays = _outputs(model.eval(), batch)
    if item.get("tf1"):
        arrays.update({f"tf1_{k}": v for k, v in _from_tf1(item, batch).items()})
    np.savez(out / f"{item['name']}.npz", **arrays)
    fast = transformers.AutoTokenizer.from_pretrained(item["folder"])
    slow = _slow_tokenizer(item["folder"])
    record = {
        "transformers": transformers.__version__,
        "model": type(model).__name__,
        "loading": {k: sorted(map(str, v)) for k, v in info.items()},
        "fast_class": type(fast).__name__, "fast": [fast(t)["input_ids"] for t in item["texts"]],
        "slow_class": type(slow).__name__, "slow": [slow(t)["input_ids"] for t in item["texts"]],
        "id2label": {str(k): v for k, v in model.config.id2label.items()},
    }
    (out / f"{item['name']}.json").write_text(json.dumps(record), encoding="utf-8")


def main() -> None:
    spec, out = json.loads(Path(sys.argv[1]).read_text(encoding="utf-8")), Path(sys.argv[2])
    out.mkdir(parents=True, exist_ok=True)
    transformers.logging.set_verbosity_error()
    torch.manual_seed(0)
    for item in spec["items"]:
        probe(item, out)


if __name__ == "__main__":
    main()

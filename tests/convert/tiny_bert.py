"""A tiny BERT (2 layers, hidden 32, 4 heads, intermediate 64) and the same weights written in every
format the converter reads, each by that format's own tools (TensorFlow's Saver and Checkpoint,
torch.save, transformers' save_pretrained) with names spelled out here independently of
converters/*.toml, so a wrong key map cannot agree with itself."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

LAYERS, HIDDEN, HEADS, INTERMEDIATE, POSITIONS = 2, 32, 4, 64, 64
SPECIALS = ["[PAD]", "[unused0]", "[unused1]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
WORDS = ["the", "of", "and", "to", "in", "is", "was", "he", "she", "it", "that", "for", "on", "with", "as",
         "by", "at", "from", "his", "her", "they", "an", "be", "this", "hello", "world", "vault", "bert",
         "model", "check"]
# 83 tokens: not a multiple of 8, so NVIDIA's padding (to 88) is exercised.
TOKENS = (SPECIALS + WORDS + [f"##{c}" for c in "abcdefghijklmnopqrstuvwxyz"]
          + list("abcdefghijklmnopqrstuvwxyz")[:20])
VOCAB = len(TOKENS)


@dataclass
class Tiny:
    folder: Path
    config: dict  # HF config.json
    state: dict[str, np.ndarray]  # canonical names, the tied decoder left out
    vocab: Path
    hf: Path  # save_pretrained folder (+ vocab.txt)


def build(folder: Path) -> Tiny:
    import torch
    from transformers import BertConfig, BertForPreTraining

    folder.mkdir(parents=True, exist_ok=True)
    vocab = folder / "vocab.txt"
    vocab.write_text("\n".join(TOKENS) + "\n", encoding="utf-8")
    config = BertConfig(vocab_size=VOCAB, hidden_size=HIDDEN, num_hidden_layers=LAYERS,
                        num_attention_heads=HEADS, intermediate_size=INTERMEDIATE,
                        max_position_embeddings=POSITIONS)
    torch.manual_seed(0)
    model = BertForPreTraining(config)
    with torch.no_grad():  # no zero biases or unit LayerNorms: a swapped name must change the numbers
        for name, param in model.named_parameters():
            param.copy_(torch.randn_like(param) * 0.5 + (1.0 if name.endswith("LayerNorm.weight") else 0.0))
    model.tie_weights()
    hf = folder / "hf"
    model.save_pretrained(hf)
    (hf / "vocab.txt").write_bytes(vocab.read_bytes())
    state = {k: v.detach().numpy().copy() for k, v in model.state_dict().items()
             if not k.startswith("cls.predictions.decoder")}
    return Tiny(folder, json.loads((hf / "config.json").read_text()), state, vocab, hf)


def google_config(tiny: Tiny) -> dict:
    keys = ("attention_probs_dropout_prob", "hidden_act", "hidden_dropout_prob", "hidden_size",
            "initializer_range", "intermediate_size", "max_position_embeddings", "num_attention_heads",
            "num_hidden_layers", "type_vocab_size", "vocab_size")
    return {k: tiny.config[k] for k in keys}


def google_names(state: dict[str, np.ndarray], *, heads: bool = True) -> dict[str, np.ndarray]:
    """modeling.py / run_pretraining.py variable names, kernels as [in, out]."""
    out = {
        "bert/embeddings/word_embeddings": state["bert.embeddings.word_embeddings.weight"],
        "bert/embeddings/position_embeddings": state["bert.embeddings.position_embeddings.weight"],
        "bert/embeddings/token_type_embeddings": state["bert.embeddings.token_type_embeddings.weight"],
        "bert/embeddings/LayerNorm/gamma": state["bert.embeddings.LayerNorm.weight"],
        "bert/embeddings/LayerNorm/beta": state["bert.embeddings.LayerNorm.bias"],
        "bert/pooler/dense/kernel": state["bert.pooler.dense.weight"].T,
        "bert/pooler/dense/bias": state["bert.pooler.dense.bias"],
    }
    for i in range(LAYERS):
        tf, pt = f"bert/encoder/layer_{i}/", f"bert.encoder.layer.{i}."
        for proj in ("query", "key", "value"):
            out[f"{tf}attention/self/{proj}/kernel"] = state[f"{pt}attention.self.{proj}.weight"].T
            out[f"{tf}attention/self/{proj}/bias"] = state[f"{pt}attention.self.{proj}.bias"]
        for scope, module in (("attention/output", "attention.output"), ("intermediate", "intermediate"),
                              ("output", "output")):
            out[f"{tf}{scope}/dense/kernel"] = state[f"{pt}{module}.dense.weight"].T
            out[f"{tf}{scope}/dense/bias"] = state[f"{pt}{module}.dense.bias"]
        for scope, module in (("attention/output", "attention.output"), ("output", "output")):
            out[f"{tf}{scope}/LayerNorm/gamma"] = state[f"{pt}{module}.LayerNorm.weight"]
            out[f"{tf}{scope}/LayerNorm/beta"] = state[f"{pt}{module}.LayerNorm.bias"]
    if heads:
        out.update({
            "cls/predictions/transform/dense/kernel": state["cls.predictions.transform.dense.weight"].T,
            "cls/predictions/transform/dense/bias": state["cls.predictions.transform.dense.bias"],
            "cls/predictions/transform/LayerNorm/gamma": state["cls.predictions.transform.LayerNorm.weight"],
            "cls/predictions/transform/LayerNorm/beta": state["cls.predictions.transform.LayerNorm.bias"],
            "cls/predictions/output_bias": state["cls.predictions.bias"],
            "cls/seq_relationship/output_weights": state["cls.seq_relationship.weight"],
            "cls/seq_relationship/output_bias": state["cls.seq_relationship.bias"],
        })
    return {k: np.ascontiguousarray(v) for k, v in out.items()}


def tensorflow():
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf

    return tf


def save_tf1(folder: Path, variables: dict[str, np.ndarray], tiny: Tiny | None = None) -> Path:
    """One tf.Variable per name saved with tf.compat.v1's Saver, as google-research/bert does."""
    tf = tensorflow()
    folder.mkdir(parents=True, exist_ok=True)
    var_list = {name: tf.Variable(value, name=name.replace("/", "_")) for name, value in variables.items()}
    prefix = tf.compat.v1.train.Saver(var_list=var_list).save(None, str(folder / "bert_model.ckpt"),
                                                             write_meta_graph=False)
    if tiny is not None:
        (folder / "bert_config.json").write_text(json.dumps(google_config(tiny)))
        (folder / "vocab.txt").write_bytes(tiny.vocab.read_bytes())
    return Path(prefix)


def pretraining_tf1(tiny: Tiny, folder: Path, *, adam: bool = True, hub: bool = False) -> Path:
    """A run_pretraining.py checkpoint: weights, Adam slots, global_step (optionally a TF-Hub `module/`)."""
    variables = google_names(tiny.state)
    if adam:
        for name in list(variables):
            variables[f"{name}/adam_m"] = np.zeros_like(variables[name])
            variables[f"{name}/adam_v"] = np.ones_like(variables[name])
        variables["global_step"] = np.array(1000, dtype=np.int64)
    if hub:
        variables = {f"module/{k}": v for k, v in variables.items()}
    return save_tf1(folder, variables, tiny)


def tf2_names(state: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Model Garden BertEncoder paths (without the `encoder/` root and attribute suffix)."""
    size = HIDDEN // HEADS
    out = {
        "layer_with_weights-0/embeddings": state["bert.embeddings.word_embeddings.weight"],
        "layer_with_weights-1/embeddings": state["bert.embeddings.position_embeddings.weight"],
        "layer_with_weights-2/embeddings": state["bert.embeddings.token_type_embeddings.weight"],
        "layer_with_weights-3/gamma": state["bert.embeddings.LayerNorm.weight"],
        "layer_with_weights-3/beta": state["bert.embeddings.LayerNorm.bias"],
        f"layer_with_weights-{LAYERS + 4}/kernel": state["bert.pooler.dense.weight"].T,
        f"layer_with_weights-{LAYERS + 4}/bias": state["bert.pooler.dense.bias"],
    }
    for i in range(LAYERS):
        tf, pt = f"layer_with_weights-{i + 4}/", f"bert.encoder.layer.{i}."
        for proj in ("query", "key", "value"):
            kernel = state[f"{pt}attention.self.{proj}.weight"]
            bias = state[f"{pt}attention.self.{proj}.bias"]
            out[f"{tf}_attention_layer/_{proj}_dense/kernel"] = kernel.T.reshape(HIDDEN, HEADS, size)
            out[f"{tf}_attention_layer/_{proj}_dense/bias"] = bias.reshape(HEADS, size)
        kernel = state[f"{pt}attention.output.dense.weight"]
        out[f"{tf}_attention_layer/_output_dense/kernel"] = kernel.T.reshape(HEADS, size, HIDDEN)
        out[f"{tf}_attention_layer/_output_dense/bias"] = state[f"{pt}attention.output.dense.bias"]
        out[f"{tf}_attention_layer_norm/gamma"] = state[f"{pt}attention.output.LayerNorm.weight"]
        out[f"{tf}_attention_layer_norm/beta"] = state[f"{pt}attention.output.LayerNorm.bias"]
        out[f"{tf}_intermediate_dense/kernel"] = state[f"{pt}intermediate.dense.weight"].T
        out[f"{tf}_intermediate_dense/bias"] = state[f"{pt}intermediate.dense.bias"]
        out[f"{tf}_output_dense/kernel"] = state[f"{pt}output.dense.weight"].T
        out[f"{tf}_output_dense/bias"] = state[f"{pt}output.dense.bias"]
        out[f"{tf}_output_layer_norm/gamma"] = state[f"{pt}output.LayerNorm.weight"]
        out[f"{tf}_output_layer_norm/beta"] = state[f"{pt}output.LayerNorm.bias"]
    return {k: np.ascontiguousarray(v) for k, v in out.items()}


def save_tf2(tiny: Tiny, folder: Path) -> Path:
    """An object-based checkpoint written by tf.train.Checkpoint over a module tree named like Keras'."""
    tf = tensorflow()
    folder.mkdir(parents=True, exist_ok=True)
    root = tf.Module()
    for path, value in tf2_names(tiny.state).items():
        node = root
        *scopes, leaf = path.split("/")
        for scope in scopes:
            child = getattr(node, scope, None)
            if child is None:
                child = tf.Module()
                setattr(node, scope, child)
            node = child
        setattr(node, leaf, tf.Variable(value))
    prefix = tf.train.Checkpoint(encoder=root).write(str(folder / "bert_model.ckpt"))
    (folder / "bert_config.json").write_text(json.dumps(google_config(tiny)))
    (folder / "vocab.txt").write_bytes(tiny.vocab.read_bytes())
    return Path(prefix)


def torch_state(tiny: Tiny) -> dict:
    import torch

    return {k: torch.from_numpy(v.copy()) for k, v in tiny.state.items()}


def save_nvidia(tiny: Tiny, folder: Path) -> Path:
    """ckpt_<step>.pt: {'model': DDP names with dense_act and a vocab padded to 88, 'optimizer': ...}."""
    import torch

    folder.mkdir(parents=True, exist_ok=True)
    model = {}
    for name, tensor in torch_state(tiny).items():
        if name in ("bert.embeddings.word_embeddings.weight", "cls.predictions.bias"):
            pad = torch.randn((8 - VOCAB % 8, *tensor.shape[1:]))  # padding rows hold noise, never used
            tensor = torch.cat([tensor, pad])
        name = name.replace("intermediate.dense.", "intermediate.dense_act.").replace(
            "pooler.dense.", "pooler.dense_act.").replace("transform.dense.", "transform.dense_act.")
        model[f"module.{name}"] = tensor
    model["module.cls.predictions.decoder.weight"] = model["module.bert.embeddings.word_embeddings.weight"]
    checkpoint = {"model": model,
                  "optimizer": {"state": {}, "param_groups": [{"lr": 1e-4, "params": [0, 1]}]},
                  "epoch": 3, "files": [0, "shard_0.hdf5"]}
    torch.save(checkpoint, folder / "ckpt_1000.pt")
    (folder / "bert_config.json").write_text(json.dumps({**google_config(tiny), "vocab_size": VOCAB}))
    (folder / "vocab.txt").write_bytes(tiny.vocab.read_bytes())
    return folder / "ckpt_1000.pt"


def save_azureml(tiny: Tiny, folder: Path, *, half: bool = False, sidecars: bool = True) -> Path:
    """torch.save(bert_encoder.state_dict()): BertModel names, no `bert.`, no heads. The real files come
    alone; `sidecars` puts a config.json and vocab.txt beside it, as a user would."""
    import torch

    folder.mkdir(parents=True, exist_ok=True)
    state = {k[len("bert."):]: (v.half() if half else v)
             for k, v in torch_state(tiny).items() if k.startswith("bert.")}
    torch.save(state, folder / "bert_encoder_epoch_1.pt")
    if sidecars:
        (folder / "config.json").write_text(json.dumps(tiny.config))
        (folder / "vocab.txt").write_bytes(tiny.vocab.read_bytes())
    return folder / "bert_encoder_epoch_1.pt"


def save_legacy_hub(tiny: Tiny, folder: Path) -> Path:
    """An old Hub pytorch_model.bin: LayerNorm gamma/beta, a position_ids buffer, no decoder keys,
    written with torch's legacy (non-zip) serialization."""
    import torch

    folder.mkdir(parents=True, exist_ok=True)
    state = {}
    for name, tensor in torch_state(tiny).items():
        if ".LayerNorm." in name:
            name = (name.replace("LayerNorm.weight", "LayerNorm.gamma")
                    .replace("LayerNorm.bias", "LayerNorm.beta"))
        state[name] = tensor
    state["bert.embeddings.position_ids"] = torch.arange(POSITIONS).unsqueeze(0)
    torch.save(state, folder / "pytorch_model.bin", _use_new_zipfile_serialization=False)
    (folder / "config.json").write_text(json.dumps(tiny.config))
    (folder / "vocab.txt").write_bytes(tiny.vocab.read_bytes())
    return folder / "pytorch_model.bin"


def save_sharded_safetensors(tiny: Tiny, folder: Path) -> Path:
    """transformers' own sharded save (small shards) + vocab."""
    from transformers import BertConfig, BertForPreTraining

    model = BertForPreTraining(BertConfig(**{k: v for k, v in tiny.config.items() if k != "architectures"}))
    model.load_state_dict(torch_state(tiny), strict=False)
    model.tie_weights()
    model.save_pretrained(folder, max_shard_size="20KB")
    (folder / "vocab.txt").write_bytes(tiny.vocab.read_bytes())
    return folder


def _pt_file(tiny, folder: Path) -> Path:
    import torch

    folder.mkdir(parents=True)
    torch.save(torch_state(tiny), folder / "pytorch_model.bin")
    (folder / "config.json").write_text(json.dumps(tiny.config))
    (folder / "vocab.txt").write_bytes(tiny.vocab.read_bytes())
    return folder / "pytorch_model.bin"


def _pt_sharded(tiny, folder: Path) -> Path:
    import torch

    folder.mkdir(parents=True)
    state = torch_state(tiny)
    names = sorted(state)
    halves = {"pytorch_model-00001-of-00002.bin": names[: len(names) // 2],
              "pytorch_model-00002-of-00002.bin": names[len(names) // 2:]}
    for file, keys in halves.items():
        torch.save({k: state[k] for k in keys}, folder / file)
    weight_map = {k: file for file, keys in halves.items() for k in keys}
    index = {"metadata": {}, "weight_map": weight_map}
    (folder / "pytorch_model.bin.index.json").write_text(json.dumps(index))
    (folder / "config.json").write_text(json.dumps(tiny.config))
    (folder / "vocab.txt").write_bytes(tiny.vocab.read_bytes())
    return folder / "pytorch_model.bin.index.json"


def _safetensors_file(tiny, folder: Path) -> Path:
    folder.mkdir(parents=True)
    (folder / "model.safetensors").write_bytes((tiny.hf / "model.safetensors").read_bytes())
    (folder / "config.json").write_text(json.dumps(tiny.config))
    (folder / "vocab.txt").write_bytes(tiny.vocab.read_bytes())
    return folder / "model.safetensors"


# label -> (builder, what to pass as SOURCE). Every layout is written by its own tools.
BUILDERS: dict[str, Callable] = {
    "tf1": lambda t, f: pretraining_tf1(t, f),
    "tf1-hub": lambda t, f: pretraining_tf1(t, f, adam=False, hub=True),
    "tf2": lambda t, f: save_tf2(t, f),
    "safetensors": _safetensors_file,
    "safetensors-sharded": lambda t, f: save_sharded_safetensors(t, f) / "model.safetensors.index.json",
    "pt": _pt_file,
    "pt-sharded": _pt_sharded,
    "hf": lambda t, f: t.hf,
    "azureml-pt": lambda t, f: save_azureml(t, f),
    "nvidia-pt": lambda t, f: save_nvidia(t, f),
    "legacy-hub": lambda t, f: save_legacy_hub(t, f),
}
# The weights each layout carries (AzureML has the encoder only).
GROUPS = ({label: ["pooler", "mlm", "nsp"] for label in BUILDERS}
          | {"azureml-pt": ["pooler"], "tf2": ["pooler"]})


def listing(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))

"""AzureML-BERT pickled shards: the real class and module names load; anything else never runs."""

from __future__ import annotations

import os
import pickle
import random
import sys
import types

import numpy as np
import pytest
from data_samples import SAMPLE_TEXT
from transformers import BertTokenizerLegacy

from bertvault.data import azureml, prepare
from bertvault.data.dataset import PretrainingDataset
from bertvault.errors import DataError, UnsafeInput
from bertvault.formats.vocab import read_vocab

FOREIGN = ["⟪not-in-vocab⟫", "ẞẞẞ-unknown"]


def _token_instance_init(self, tokens_a, tokens_b, is_next, lang="en"):
    self.tokens_a, self.tokens_b, self.is_next, self.lang = tokens_a, tokens_b, is_next, lang


@pytest.fixture
def shard_classes(monkeypatch):
    """make(module, creator) -> (creator class, TokenInstance class) registered under that module name,
    as AzureML-BERT's scripts defined them when they pickled the shards."""

    def make(module: str, creator: str = "GenericPretrainingDataCreator"):
        if module not in sys.modules:
            parts = module.split(".")
            for i in range(1, len(parts) + 1):
                monkeypatch.setitem(sys.modules, ".".join(parts[:i]), types.ModuleType(".".join(parts[:i])))
        owner = sys.modules[module]
        token_instance = type("TokenInstance", (), {"__module__": module, "__init__": _token_instance_init})
        data_creator = type(creator, (), {"__module__": module})
        monkeypatch.setattr(owner, "TokenInstance", token_instance, raising=False)
        monkeypatch.setattr(owner, creator, data_creator, raising=False)
        return data_creator, token_instance

    return make


def _instances(token_instance, vocab_path, count: int, seed: int = 0):
    slow = BertTokenizerLegacy(str(vocab_path))
    text = SAMPLE_TEXT.read_text(encoding="utf-8")
    lines = [slow.tokenize(line) for line in text.split("\n") if line.strip()]
    rng = random.Random(seed)
    out = []
    for _ in range(count):
        a = [t for line in rng.sample(lines, 3) for t in line][: rng.randint(5, 300)]
        b = [t for line in rng.sample(lines, 3) for t in line][: rng.randint(5, 300)]
        if rng.random() < 0.05:
            b.append(rng.choice(FOREIGN))
        out.append(token_instance(a, b, rng.randint(0, 1)))
    return out


def _shard(path, creator, instances, protocol=3):
    obj = creator()
    obj.dupe_factor, obj.max_seq_length, obj.small_seq_prob = 1, 512, 0.1
    obj.documents, obj.instances, obj.len = None, instances, len(instances)
    path.write_bytes(pickle.dumps(obj, protocol=protocol))
    return path


@pytest.mark.parametrize(
    ("module", "creator", "protocol"),
    [
        ("__main__", "GenericPretrainingDataCreator", 3),
        ("__main__", "WikiNBookCorpusPretrainingDataCreator", 2),
        ("sources", "WikiPretrainingDataCreator", 4),
        ("turing.sources", "GenericPretrainingDataCreator", 5),
        ("__main__", "GenericPretrainingDataCreator", 0),
    ],
)
def test_shards_load_with_their_class_and_module_names(tmp_path, shard_classes, uncased_vocab,
                                                       module, creator, protocol):
    creator_cls, instance_cls = shard_classes(module, creator)
    made = _instances(instance_cls, uncased_vocab, 40)
    path = _shard(tmp_path / "wikipedia_segmented_part_0.bin", creator_cls, made, protocol)
    loaded = azureml.load(path)
    assert all(type(i) is azureml.TokenInstance for i in loaded)
    def fields(instances):
        return [(i.tokens_a, i.tokens_b, i.is_next) for i in instances]

    assert fields(loaded) == fields(made)


def test_prepare_converts_a_shard_to_native(tmp_path, shard_classes, uncased_vocab, caplog):
    creator_cls, instance_cls = shard_classes("__main__")
    made = _instances(instance_cls, uncased_vocab, 300)
    path = _shard(tmp_path / "part.bin", creator_cls, made)
    plan = prepare.plan([str(path)], str(uncased_vocab), str(tmp_path / "out"), prepare.Options())
    assert plan.options.seq_len == 512
    assert any("AzureML shard" in note and "memory" in note for note in plan.notes)
    header = prepare.run(plan)
    vocab = read_vocab(uncased_vocab)
    foreign = sum(t in FOREIGN for i in made for t in i.tokens_b)
    assert header["counts"]["examples"] == 300 and foreign > 0
    assert header["counts"]["unknown_strings"] == foreign
    assert set(header["unknown_strings"]) <= set(FOREIGN)
    data = PretrainingDataset(tmp_path / "out", shuffle=False)
    for k, inst in enumerate(made):
        a, b, label = data.pair(k)
        assert a.tolist() == [vocab[t] for t in inst.tokens_a]
        assert b.tolist() == [vocab.get(t, vocab["[UNK]"]) for t in inst.tokens_b]
        assert label == inst.is_next


def test_shorter_seq_len_truncates_pairs(tmp_path, shard_classes, uncased_vocab):
    creator_cls, instance_cls = shard_classes("__main__")
    path = _shard(tmp_path / "part.bin", creator_cls, _instances(instance_cls, uncased_vocab, 100))
    plan = prepare.plan([str(path)], str(uncased_vocab), str(tmp_path / "out"), prepare.Options(seq_len=128))
    header = prepare.run(plan)
    assert header["counts"]["truncated"] > 50
    data = PretrainingDataset(tmp_path / "out", shuffle=False)
    assert max(len(a) + len(b) for a, b, _ in map(data.pair, range(100))) == 125


class _Payload:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_os_system_payload_is_refused_without_running(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.bin"
    path.write_bytes(pickle.dumps(_Payload(marker), protocol=3))
    with pytest.raises(UnsafeInput, match=r"names posix\.system"):
        azureml.load(path)
    assert not marker.exists()


def test_payload_hidden_inside_a_real_looking_shard_is_refused(tmp_path, shard_classes, uncased_vocab):
    marker = tmp_path / "pwned"
    creator_cls, instance_cls = shard_classes("__main__")
    instances = _instances(instance_cls, uncased_vocab, 20)
    instances.insert(10, _Payload(marker))
    path = _shard(tmp_path / "part.bin", creator_cls, instances)
    out = tmp_path / "out"
    plan = prepare.plan([str(path)], str(uncased_vocab), str(out), prepare.Options())
    with pytest.raises(UnsafeInput):
        prepare.run(plan)
    assert not marker.exists()
    assert not out.exists(), "no half-written output"


@pytest.mark.parametrize("target", [("builtins", "eval"), ("subprocess", "Popen"), ("__main__", "Anything")])
def test_other_globals_are_refused(tmp_path, target):
    module, name = target
    path = tmp_path / "g.bin"
    path.write_bytes(b"\x80\x03c" + f"{module}\n{name}\n".encode() + b"q\x00.")
    with pytest.raises(UnsafeInput, match=f"{module}.{name}"):
        azureml.load(path)


def test_damaged_and_wrong_shape_pickles(tmp_path, shard_classes, uncased_vocab):
    creator_cls, instance_cls = shard_classes("__main__")
    instances = _instances(instance_cls, uncased_vocab, 20)
    good = _shard(tmp_path / "part.bin", creator_cls, instances).read_bytes()
    cut = tmp_path / "cut.bin"
    cut.write_bytes(good[: len(good) // 2])
    with pytest.raises(DataError, match="not a readable AzureML shard"):
        azureml.load(cut)
    plain = tmp_path / "list.bin"
    plain.write_bytes(pickle.dumps([1, 2, 3], protocol=3))
    with pytest.raises(DataError, match="expected a data-creator object"):
        azureml.load(plain)


def test_memory_estimate_follows_the_protocol(tmp_path):
    three, four = tmp_path / "3.bin", tmp_path / "4.bin"
    three.write_bytes(pickle.dumps(list(range(10)), protocol=3))
    four.write_bytes(pickle.dumps(list(range(10)), protocol=4))
    assert azureml.memory_estimate(three) == three.stat().st_size * 7
    assert azureml.memory_estimate(four) == four.stat().st_size * 12
    assert np.isfinite(azureml.available_memory() or 0)

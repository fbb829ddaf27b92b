"""The small parts of training: FLOPs formula, schedules, LAMB, settings, launch arguments, messages."""

from __future__ import annotations

import itertools

import pytest
import torch

from bertvault.errors import TrainingError, UsageError
from bertvault.train import config, devices, launch, optim
from bertvault.train.metrics import flops_per_token


@pytest.mark.parametrize(("layers", "hidden", "masked", "everywhere"),
                         [(12, 768, 0.546, 0.668), (24, 1024, 1.880, 2.044)])
def test_flops_per_token_matches_the_reference_table(layers, hidden, masked, everywhere):
    assert flops_per_token(layers, hidden, 128, 30522, 0.15) / 1e9 == pytest.approx(masked, abs=0.002)
    assert flops_per_token(layers, hidden, 128, 30522, 1.0) / 1e9 == pytest.approx(everywhere, abs=0.002)


def test_warmup_then_linear_decay_to_zero():
    schedule = optim.WarmupDecay(warmup=4, total=10)
    factors = [schedule(step) for step in range(10)]
    assert factors[:4] == [0.25, 0.5, 0.75, 1.0]
    assert factors[4] == 1.0 and factors[-1] == pytest.approx(1 / 6)
    assert all(a >= b for a, b in itertools.pairwise(factors[3:]))
    poly = optim.WarmupDecay(warmup=0, total=10, power=0.5)
    assert poly(5) == pytest.approx(0.5**0.5)


def test_no_decay_on_layernorm_and_biases():
    from transformers import BertConfig, BertForPreTraining

    model = BertForPreTraining(BertConfig(vocab_size=50, hidden_size=16, num_hidden_layers=1,
                                          num_attention_heads=2, intermediate_size=32))
    decay, no_decay = optim.parameter_groups(model, 0.01)
    names = {id(p): n for n, p in model.named_parameters()}
    assert all(names[id(p)].endswith("weight") and "LayerNorm" not in names[id(p)] for p in decay["params"])
    assert any("LayerNorm" in names[id(p)] for p in no_decay["params"])
    assert no_decay["weight_decay"] == 0.0
    total = sum(len(g["params"]) for g in (decay, no_decay))
    assert total == len({id(p) for p in model.parameters()})  # the tied decoder counted once


def test_lamb_fits_a_least_squares_problem():
    torch.manual_seed(0)
    x, w_true = torch.randn(64, 8), torch.randn(8, 1)
    y = x @ w_true
    w = torch.nn.Parameter(torch.zeros(8, 1) + 0.1)
    opt = optim.Lamb([{"params": [w], "weight_decay": 0.0}], lr=0.05)
    first = None
    for _ in range(300):
        loss = ((x @ w - y) ** 2).mean()
        first = first if first is not None else loss.item()
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < 0.01 * first


def test_model_shapes():
    assert config.parse_shape("base") == (12, 768, 12)
    assert config.parse_shape("L4-H256-A4") == (4, 256, 4)
    with pytest.raises(UsageError, match="not a multiple"):
        config.parse_shape("2-100-3")
    with pytest.raises(UsageError, match="--config must be"):
        config.parse_shape("huge")


def test_settings_are_checked_together():
    with pytest.raises(UsageError) as caught:
        config.resolve(config.PretrainSettings, {"optimiser": "sgd"}, {"steps": 0, "optimizer": "sgd"})
    message = str(caught.value)
    assert "unknown setting 'optimiser'" in message
    assert "--steps must be at least 1" in message and "--optimizer must be one of adamw, lamb" in message


def test_torchrun_arguments():
    single = launch.torchrun_arguments(["pretrain", "--out", "x"], 2, 1, 0, None)
    assert single[:4] == ["--nproc-per-node=2", "--nnodes=1", "--max-restarts=0", "--standalone"]
    assert single[-5:] == ["-m", "bertvault", "pretrain", "--out", "x"]
    multi = launch.torchrun_arguments(["pretrain"], 8, 2, 1, "node0:29500")
    assert "--rdzv-endpoint=node0:29500" in multi and "--node-rank=1" in multi
    with pytest.raises(UsageError, match="--rdzv-endpoint"):
        launch.torchrun_arguments(["pretrain"], 8, 2, 1, None)


def test_out_of_memory_becomes_advice():
    with pytest.raises(TrainingError, match="lower --batch-size"), \
            devices.out_of_memory_hint("a micro-batch of 4096 × 512 tokens"):
        raise RuntimeError("[enforce fail at alloc_cpu.cpp:117] DefaultCPUAllocator: can't allocate memory")
    with pytest.raises(TrainingError, match="does not fit in device memory"), \
            devices.out_of_memory_hint("a micro-batch"):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB")
    with pytest.raises(RuntimeError, match="something else"), devices.out_of_memory_hint("a micro-batch"):
        raise RuntimeError("something else")

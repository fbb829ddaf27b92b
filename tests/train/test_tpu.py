"""The XLA path (torch_xla, PJRT). Run with `scripts/test-tpu.sh`, which sets PJRT_DEVICE=CPU in its own
venv."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.tpu

TINY = {"batch_size": 4, "seq_len": 32, "max_predictions": 5, "log_every": 1}


@pytest.fixture(autouse=True)
def _xla():
    pytest.importorskip("torch_xla")


def test_pretrain_on_an_xla_device_learns_saves_and_resumes(tmp_path, tiny_bert, prepared_sample,
                                                            read_metrics):
    from bertvault.train import devices, pretrain

    assert devices.pick("tpu").kind == "xla"
    out = tmp_path / "run"
    values = {**TINY, "from_": str(tiny_bert), "data": str(prepared_sample), "out": str(out), "steps": 8,
              "lr": 5e-3, "save_every": 4, "device": "tpu", "precision": "bf16"}
    result = pretrain.run(pretrain.resolve_settings({}, values, resume=False))
    records = read_metrics(out)
    assert [r["step"] for r in records] == list(range(1, 9))
    assert all(0 < r["loss"] < 20 for r in records)
    assert (result.model_dir / "model.safetensors").is_file()

    resumed_out = tmp_path / "resumed"
    first_half = {**values, "out": str(resumed_out)}
    # A run stopped after its step-4 checkpoint: simulate by resuming a copy truncated at step 4.
    import shutil

    shutil.copytree(out, resumed_out)
    shutil.rmtree(resumed_out / "checkpoints" / "step-00000008")
    shutil.rmtree(resumed_out / "model")
    pretrain.run(pretrain.resolve_settings({}, {"out": first_half["out"]}, resume=True), resume=True)
    again = {r["step"]: r["loss"] for r in read_metrics(resumed_out)}
    for step in range(5, 9):
        assert again[step] == pytest.approx(records[step - 1]["loss"], rel=1e-3), step


def test_finetune_on_an_xla_device(tmp_path, tiny_bert, vocab_tokens):
    from bertvault.train import finetune

    words = [t for t in vocab_tokens if t.isalpha() and len(t) > 3]
    rows = [f"{' '.join(words[i % 10 + (0 if i % 2 else 20)] for _ in range(4))}\t{i % 2}" for i in range(64)]
    train = tmp_path / "train.tsv"
    train.write_text("sentence\tlabel\n" + "\n".join(rows) + "\n")
    result = finetune.run(finetune.resolve_settings({}, {
        "from_": str(tiny_bert), "train": str(train), "eval": str(train), "out": str(tmp_path / "out"),
        "epochs": 2, "batch_size": 16, "max_seq_len": 16, "lr": 3e-3, "device": "tpu"}))
    assert 0 <= result.best_scores["accuracy"] <= 1
    assert (result.model_dir / "config.json").is_file()

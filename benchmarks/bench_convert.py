"""Benchmark `bertvault convert` on a BERT-large-shaped TF1 checkpoint (random weights, google's names).

    python benchmarks/bench_convert.py [--runs 3] [--cases tf1-st,tf1-st-check,hf,st-pt,pt-st] [--skip-hf]
                                       [--keep] [--baseline CHECKOUT]

Measures wall time, CPU time (user + sys) and peak RSS (from /usr/bin/time -v of each child process) for:
  * TF1 -> safetensors with bertvault, against
    (a) `cp` of the same bytes (goal: <= 3x its time), and
    (b) Hugging Face's own TF->PyTorch conversion (transformers<5: BertForPreTraining +
        load_tf_weights_in_bert, as its convert_bert_original_tf_checkpoint_to_pytorch script does)
        followed by a safetensors save (goal: <= 0.5x its time and <= 0.6x its peak RSS);
  * safetensors -> pt and pt -> safetensors with bertvault, against `cp` (goal: <= 2x).

transformers<5 runs from its own virtualenv (.bench/venv-hf4), created here on first use with
`python -m venv` and `pip install -c constraints.txt 'transformers<5' torch==2.13.0 tensorflow-cpu`.
Times are medians over --runs warm-cache runs (the page cache holds the input, as it would right
after a download), each command interleaved with its `cp` baseline round by round (the order reversed
every other round) so that load on a shared machine hits both alike; results go to stdout and
.bench/bench_convert.json. The provenance record lists the source's sha256: bertvault remembers it
by the file's stat in BERTVAULT_HOME (.bench/home here), so only the first conversion of a file hashes
it (beside the conversion, on the other core); "[first sight]" rows use an empty home every run.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from _common import as_installed

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / ".bench"
VENV = BENCH / "venv-hf4"
CKPT = BENCH / "bert-large-tf1"
LARGE = {"hidden_size": 1024, "num_hidden_layers": 24, "num_attention_heads": 16, "intermediate_size": 4096,
         "vocab_size": 30522, "max_position_embeddings": 512, "type_vocab_size": 2, "hidden_act": "gelu",
         "hidden_dropout_prob": 0.1, "attention_probs_dropout_prob": 0.1, "initializer_range": 0.02}

MAKE_CHECKPOINT = r"""
import json, os, sys
os.environ["TF_CPP_MIN_LOG_LEVEL"] = "2"
import numpy as np, tensorflow as tf
folder, config = sys.argv[1], json.loads(sys.argv[2])
H, I, V = config["hidden_size"], config["intermediate_size"], config["vocab_size"]
shapes = {"bert/embeddings/word_embeddings": [V, H], "bert/embeddings/position_embeddings": [512, H],
          "bert/embeddings/token_type_embeddings": [2, H], "bert/embeddings/LayerNorm/gamma": [H],
          "bert/embeddings/LayerNorm/beta": [H], "bert/pooler/dense/kernel": [H, H],
          "bert/pooler/dense/bias": [H],
          "cls/predictions/transform/dense/kernel": [H, H], "cls/predictions/transform/dense/bias": [H],
          "cls/predictions/transform/LayerNorm/gamma": [H], "cls/predictions/transform/LayerNorm/beta": [H],
          "cls/predictions/output_bias": [V], "cls/seq_relationship/output_weights": [2, H],
          "cls/seq_relationship/output_bias": [2]}
for i in range(config["num_hidden_layers"]):
    p = f"bert/encoder/layer_{i}/"
    for proj in ("query", "key", "value"):
        shapes[p + f"attention/self/{proj}/kernel"] = [H, H]
        shapes[p + f"attention/self/{proj}/bias"] = [H]
    shapes.update({p + "attention/output/dense/kernel": [H, H], p + "attention/output/dense/bias": [H],
                   p + "attention/output/LayerNorm/gamma": [H], p + "attention/output/LayerNorm/beta": [H],
                   p + "intermediate/dense/kernel": [H, I], p + "intermediate/dense/bias": [I],
                   p + "output/dense/kernel": [I, H], p + "output/dense/bias": [H],
                   p + "output/LayerNorm/gamma": [H], p + "output/LayerNorm/beta": [H]})
rng = np.random.default_rng(0)
names = sorted(shapes)
tensors = [tf.convert_to_tensor((rng.standard_normal(shapes[n], dtype=np.float32) * 0.02)) for n in names]
os.makedirs(folder, exist_ok=True)
tf.raw_ops.SaveV2(prefix=os.path.join(folder, "bert_model.ckpt"), tensor_names=names,
                  shape_and_slices=[""] * len(names), tensors=tensors)
json.dump(config, open(os.path.join(folder, "bert_config.json"), "w"))
special = ["[PAD]"] + [f"[unused{i}]" for i in range(99)] + ["[UNK]", "[CLS]", "[SEP]", "[MASK]"]
words = special + [f"w{i}" for i in range(V - len(special))]
open(os.path.join(folder, "vocab.txt"), "w").write("\n".join(words) + "\n")
"""

HF_CONVERT = r"""
import os, sys
os.environ["TF_CPP_MIN_LOG_LEVEL"] = "2"
from transformers import BertConfig, BertForPreTraining, load_tf_weights_in_bert
from transformers.utils import logging
logging.set_verbosity_error()
prefix, config_file, out = sys.argv[1:4]
config = BertConfig.from_json_file(config_file)
model = BertForPreTraining(config)
load_tf_weights_in_bert(model, config, prefix)
model.save_pretrained(out, safe_serialization=True)
"""


def run_timed(cmd: list[str], env: dict | None = None) -> dict:
    """Wall time, CPU time (user + sys, which a loaded machine moves less) and peak RSS of one run."""
    started = time.perf_counter()
    done = subprocess.run(["/usr/bin/time", "-v", *cmd], capture_output=True, text=True, env=env, check=False)
    wall = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{done.stdout[-2000:]}\n{done.stderr[-4000:]}")

    def field(name: str) -> float:
        return float(re.search(rf"{re.escape(name)}: ([\d.]+)", done.stderr).group(1))

    return {"wall": wall, "cpu": field("User time (seconds)") + field("System time (seconds)"),
            "rss": int(field("Maximum resident set size (kbytes)")) * 1024}


def measure(jobs: list[tuple[str, list[str], object]], runs: int, env: dict | None = None) -> list[dict]:
    """Each (label, command, cleanup) `runs` times, interleaved round by round, so that a burst of
    load on a shared machine hits a command and its baseline alike. Medians of wall and CPU time."""
    samples: list[list[dict]] = [[] for _ in jobs]
    for round_ in range(runs):
        # the order reverses every other round: this VM's disk is fast or slow for a whole run
        # depending on what the run before it freed, and a fixed order would favour one job
        order = list(zip(jobs, samples))
        for (_, cmd, cleanup), taken in (order if round_ % 2 == 0 else reversed(order)):
            cleanup()
            os.sync()  # no run pays for the writeback of the one before
            taken.append(run_timed(cmd, env))
    results = []
    for (label, _, _), taken in zip(jobs, samples):
        walls, cpus = [t["wall"] for t in taken], [t["cpu"] for t in taken]
        result = {"label": label, "seconds": statistics.median(walls), "all_seconds": walls,
                  "cpu_seconds": statistics.median(cpus), "all_cpu_seconds": cpus,
                  "peak_rss": max(t["rss"] for t in taken)}
        print(f"  {label:46} {result['seconds']:7.2f} s wall (best {min(walls):5.2f})"
              f"  {result['cpu_seconds']:7.2f} s CPU"
              f"   peak RSS {result['peak_rss'] / 2**20:7.0f} MiB", flush=True)
        results.append(result)
    return results


def remove(*paths: Path):
    def run():
        for path in paths:
            if path.is_dir():
                shutil.rmtree(path)
            elif path.exists():
                path.unlink()
    return run


def hf_venv() -> Path | None:
    python = VENV / "bin" / "python"
    check = [str(python), "-c",
             "import transformers, torch, tensorflow; assert transformers.__version__ < '5'"]
    if python.exists() and subprocess.run(check, capture_output=True, check=False).returncode == 0:
        return python
    print(f"building {VENV} (transformers<5, torch 2.13.0, tensorflow-cpu) ...", flush=True)
    subprocess.run([sys.executable, "-m", "venv", "--clear", str(VENV)], check=True)
    install = [str(python), "-m", "pip", "install", "-q", "-c", str(ROOT / "constraints.txt"),
               "transformers<5", "torch==2.13.0", "tensorflow-cpu"]
    if (subprocess.run(install, check=False).returncode != 0
            or subprocess.run(check, capture_output=True, check=False).returncode != 0):
        print("could not build the transformers<5 virtualenv; skipping the Hugging Face comparison",
              flush=True)
        return None
    return python


@dataclass
class Bench:
    """What every case needs: the options, the checkpoint, the commands' shared parts, the results."""

    args: argparse.Namespace
    prefix: Path
    data: Path
    results: dict
    out: Path = BENCH / "out"
    # The source's sha256 for the provenance record is remembered in BERTVAULT_HOME (keyed by the
    # file's stat), as it would be after a pull; "first sight" runs use an empty home every time.
    home: Path = BENCH / "home"
    st_ready: bool = False

    @property
    def bertvault(self) -> list[str]:
        return ["env", f"BERTVAULT_HOME={self.home}", sys.executable, "-m", "bertvault"]

    @property
    def st_dir(self) -> Path:
        return self.out / "bertvault-st"

    @property
    def st_file(self) -> Path:
        return self.st_dir / "model.safetensors"

    @property
    def pt_file(self) -> Path:
        return self.out / "model.bin"

    @property
    def to_st(self) -> list[str]:
        return [*self.bertvault, "convert", str(self.prefix), "--to", "safetensors",
                "--out", str(self.st_dir)]

    @property
    def to_pt(self) -> list[str]:
        return [*self.bertvault, "convert", str(self.st_file), "--to", "pt", "--out", str(self.pt_file),
                "--no-check"]

    def first_sight(self, job: tuple[str, list[str], object]) -> tuple[str, list[str], object]:
        label, cmd, cleanup = job
        cold_home = self.out / "cold-home"
        cold = [f"BERTVAULT_HOME={cold_home}" if part == f"BERTVAULT_HOME={self.home}" else part
                for part in cmd]
        return f"{label} [first sight]", cold, lambda: (cleanup(), remove(cold_home)())

    def with_baseline(self, label: str, cmd: list[str], cleanup) -> list[tuple[str, list[str], object]]:
        """The job, and the same command run from the --baseline checkout (python -m takes the cwd's
        package)."""
        jobs = [(label, cmd, cleanup)]
        if self.args.baseline is not None:
            elsewhere = ["env", "-C", str(self.args.baseline.resolve()), *cmd]
            jobs.append((f"{label} [baseline]", elsewhere, cleanup))
        return jobs

    def record(self, keys: list[str], measured: list[dict]) -> None:
        for key, result in zip(keys, measured):
            self.results[key] = result
        if self.args.baseline is not None:  # the baseline twin of the last job (the bertvault one)
            self.results[f"{keys[-1]}_baseline"] = measured[len(keys)]

    def measure_against(self, keys: list[str], baseline: tuple[str, list[str], object],
                        job: tuple[str, list[str], object]) -> None:
        """`job` beside its `cp` baseline, at first sight and warm (and from --baseline)."""
        jobs = [baseline, self.first_sight(job), *self.with_baseline(*job)]
        self.record(keys, measure(jobs, self.args.runs))

    def st_source(self) -> None:
        """The safetensors file that the st-pt and pt-st cases start from."""
        if self.st_ready:
            return
        print("safetensors <-> pt", flush=True)
        if not self.st_file.exists():
            subprocess.run([*self.to_st, "--no-check"], check=True, capture_output=True)
        self.st_ready = True


def tf1_to_st(bench: Bench) -> None:
    print("TF1 -> safetensors", flush=True)
    copy_dir = bench.out / "cp"
    cp_tf1 = ("cp (same bytes)", ["cp", str(bench.data), f"{bench.prefix}.index", str(copy_dir)],
              lambda: (remove(copy_dir)(), copy_dir.mkdir()))
    job = ("bertvault convert --to safetensors --no-check", [*bench.to_st, "--no-check"],
           remove(bench.st_dir))
    bench.measure_against(["cp_tf1", "bertvault_tf1_to_st_first_sight", "bertvault_tf1_to_st"], cp_tf1, job)


def tf1_to_st_checked(bench: Bench) -> None:
    bench.record(["bertvault_tf1_to_st_checked"], measure(
        bench.with_baseline("bertvault convert --to safetensors --check", [*bench.to_st, "--check"],
                            remove(bench.st_dir)),
        max(1, bench.args.runs // 2)))


def hf_tf1_to_st(bench: Bench) -> None:
    python = hf_venv()
    if python is None:
        return
    hf_dir = bench.out / "hf4"
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    (bench.results["hf_tf1_to_st"],) = measure(
        [("transformers<5 TF->PyTorch + safetensors save",
          [str(python), "-c", HF_CONVERT, str(bench.prefix), str(CKPT / "bert_config.json"), str(hf_dir)],
          remove(hf_dir))], bench.args.runs, env)


def st_to_pt(bench: Bench) -> None:
    bench.st_source()
    copied = bench.out / "cp.safetensors"
    cp_st = ("cp model.safetensors", ["cp", str(bench.st_file), str(copied)], remove(copied))
    job = ("bertvault safetensors -> pt", bench.to_pt, remove(bench.pt_file))
    bench.measure_against(["cp_st", "bertvault_st_to_pt_first_sight", "bertvault_st_to_pt"], cp_st, job)


def pt_to_st(bench: Bench) -> None:
    bench.st_source()
    if not bench.pt_file.exists():
        subprocess.run(bench.to_pt, check=True, capture_output=True)
    st_again, copied = bench.out / "again.safetensors", bench.out / "cp.bin"
    cp_pt = ("cp model.bin", ["cp", str(bench.pt_file), str(copied)], remove(copied))
    cmd = [*bench.bertvault, "convert", str(bench.pt_file), "--to", "safetensors", "--out", str(st_again),
           "--no-check", "--config", str(bench.st_dir / "config.json")]
    job = ("bertvault pt -> safetensors", cmd, remove(st_again))
    bench.measure_against(["cp_pt", "bertvault_pt_to_st_first_sight", "bertvault_pt_to_st"], cp_pt, job)


CASES = {"tf1-st": tf1_to_st, "tf1-st-check": tf1_to_st_checked, "hf": hf_tf1_to_st, "st-pt": st_to_pt,
         "pt-st": pt_to_st}
GOALS = {"tf1_to_st_vs_cp_time": 3.0, "st_to_pt_vs_cp_time": 2.0, "pt_to_st_vs_cp_time": 2.0,
         "tf1_to_st_vs_hf_time": 0.5, "tf1_to_st_vs_hf_peak_rss": 0.6}


def parse_args() -> tuple[argparse.Namespace, list[str]]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--cases", default=",".join(CASES),
                        help=f"comma-separated subset of {', '.join(CASES)} (default: all)")
    parser.add_argument("--skip-hf", action="store_true", help="same as leaving `hf` out of --cases")
    parser.add_argument("--keep", action="store_true", help="keep the outputs in .bench/out")
    parser.add_argument("--baseline", type=Path, metavar="CHECKOUT",
                        help="also run `python -m bertvault` from another checkout (e.g. `git archive` of an "
                             "older commit, unpacked), interleaved with this one, for before/after figures")
    args = parser.parse_args()
    cases = [c.strip() for c in args.cases.split(",") if c.strip()]
    unknown = sorted(set(cases) - set(CASES))
    if unknown:
        parser.error(f"unknown case(s) {', '.join(unknown)}; choose from {', '.join(CASES)}")
    if args.skip_hf and "hf" in cases:
        cases.remove("hf")
    return args, cases


def checkpoint() -> tuple[Path, Path, int]:
    """The BERT-large-shaped TF1 checkpoint, written on first use: its prefix, data file and size."""
    prefix = CKPT / "bert_model.ckpt"
    if not Path(f"{prefix}.index").exists():
        print(f"writing a BERT-large-shaped TF1 checkpoint to {CKPT} ...", flush=True)
        subprocess.run([sys.executable, "-c", MAKE_CHECKPOINT, str(CKPT), json.dumps(LARGE)], check=True)
    data = next(CKPT.glob("bert_model.ckpt.data-*"))
    size = data.stat().st_size + Path(f"{prefix}.index").stat().st_size
    print(f"checkpoint: {size / 1e9:.2f} GB of TF1 variables in {CKPT}", flush=True)
    return prefix, data, size


def ratios_of(results: dict) -> dict[str, float]:
    ratios: dict[str, float] = {}
    pairs = {"tf1_to_st_vs_cp": ("bertvault_tf1_to_st", "cp_tf1"),
             "st_to_pt_vs_cp": ("bertvault_st_to_pt", "cp_st"),
             "pt_to_st_vs_cp": ("bertvault_pt_to_st", "cp_pt")}
    for key, (ours, base) in pairs.items():
        for suffix in ("", "_first_sight", "_baseline"):
            if ours + suffix in results:
                mine = results[ours + suffix]
                ratios[f"{key}_time{suffix}"] = mine["seconds"] / results[base]["seconds"]
                # Best of the runs against best of the runs: this VM has a slow mode (a run's system
                # time up to 7x, at random, for cp too); the best runs show what the work itself costs.
                best = min(mine["all_seconds"]) / min(results[base]["all_seconds"])
                ratios[f"{key}_best_time{suffix}"] = best
                ratios[f"{key}_cpu{suffix}"] = mine["cpu_seconds"] / max(results[base]["cpu_seconds"], 1e-3)
    if results.get("hf_tf1_to_st") and "bertvault_tf1_to_st" in results:
        ours, hf = results["bertvault_tf1_to_st"], results["hf_tf1_to_st"]
        ratios |= {"tf1_to_st_vs_hf_time": ours["seconds"] / hf["seconds"],
                   "tf1_to_st_vs_hf_peak_rss": ours["peak_rss"] / hf["peak_rss"]}
    return ratios


def print_ratios(ratios: dict[str, float]) -> None:
    print("ratios (goal; CPU-time ratios are for information):")
    for key, value in ratios.items():
        goal = GOALS.get(key)
        verdict = "" if goal is None else f"(<= {goal})  {'ok' if value <= goal else 'OVER'}"
        print(f"  {key:28} {value:6.2f}  {verdict}")


def main() -> None:
    args, cases = parse_args()
    as_installed()
    prefix, data, size = checkpoint()
    bench = Bench(args, prefix, data, {"checkpoint_bytes": size, "runs": args.runs, "cases": cases})
    bench.out.mkdir(exist_ok=True)
    warm_cache = ["cat", str(data), str(prefix) + ".index"]
    subprocess.run(warm_cache, stdout=subprocess.DEVNULL, check=True)
    for name, run in CASES.items():
        if name in cases:
            run(bench)
    bench.results["ratios"] = ratios_of(bench.results)
    print_ratios(bench.results["ratios"])
    (BENCH / "bench_convert.json").write_text(json.dumps(bench.results, indent=2))
    if not args.keep:
        shutil.rmtree(bench.out)


if __name__ == "__main__":
    main()

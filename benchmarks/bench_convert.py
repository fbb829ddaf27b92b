"""Benchmark `bertvault convert` on a BERT-large-shaped TF1 checkpoint (random weights, google's names).

    python benchmarks/bench_convert.py [--runs 3] [--skip-hf] [--keep]

Measures wall time and peak RSS (from /usr/bin/time -v of each child process) for:
  * TF1 -> safetensors with bertvault, against
    (a) `cp` of the same bytes (goal: <= 3x its time), and
    (b) Hugging Face's own TF->PyTorch conversion (transformers<5: BertForPreTraining +
        load_tf_weights_in_bert, as its convert_bert_original_tf_checkpoint_to_pytorch script does)
        followed by a safetensors save (goal: <= 0.5x its time and <= 0.6x its peak RSS);
  * safetensors -> pt and pt -> safetensors with bertvault, against `cp` (goal: <= 2x).

transformers<5 runs from its own virtualenv (.bench/venv-hf4), created here on first use with
`python -m venv` and `pip install -c constraints.txt 'transformers<5' torch==2.13.0 tensorflow-cpu`.
Times are medians over --runs warm-cache runs (the page cache holds the input, as it would right
after a download); results go to stdout and .bench/bench_convert.json.
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
from pathlib import Path

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
          "bert/embeddings/LayerNorm/beta": [H], "bert/pooler/dense/kernel": [H, H], "bert/pooler/dense/bias": [H],
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


def peak_and_wall(cmd: list[str], env: dict | None = None) -> tuple[float, int]:
    started = time.perf_counter()
    done = subprocess.run(["/usr/bin/time", "-v", *cmd], capture_output=True, text=True, env=env)
    wall = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{done.stdout[-2000:]}\n{done.stderr[-4000:]}")
    rss = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", done.stderr).group(1)) * 1024
    return wall, rss


def measure(label: str, cmd: list[str], runs: int, cleanup, env: dict | None = None) -> dict:
    walls, peaks = [], []
    for _ in range(runs):
        cleanup()
        wall, rss = peak_and_wall(cmd, env)
        walls.append(wall)
        peaks.append(rss)
    result = {"label": label, "seconds": statistics.median(walls), "all_seconds": walls, "peak_rss": max(peaks)}
    print(f"  {label:42} {result['seconds']:7.2f} s   peak RSS {result['peak_rss'] / 2**20:8.0f} MiB", flush=True)
    return result


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
    check = [str(python), "-c", "import transformers, torch, tensorflow; assert transformers.__version__ < '5'"]
    if python.exists() and subprocess.run(check, capture_output=True).returncode == 0:
        return python
    print(f"building {VENV} (transformers<5, torch 2.13.0, tensorflow-cpu) ...", flush=True)
    subprocess.run([sys.executable, "-m", "venv", "--clear", str(VENV)], check=True)
    install = [str(python), "-m", "pip", "install", "-q", "-c", str(ROOT / "constraints.txt"),
               "transformers<5", "torch==2.13.0", "tensorflow-cpu"]
    if subprocess.run(install).returncode != 0 or subprocess.run(check, capture_output=True).returncode != 0:
        print("could not build the transformers<5 virtualenv; skipping the Hugging Face comparison", flush=True)
        return None
    return python


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--skip-hf", action="store_true")
    parser.add_argument("--keep", action="store_true", help="keep the outputs in .bench/out")
    args = parser.parse_args()

    prefix = CKPT / "bert_model.ckpt"
    if not Path(f"{prefix}.index").exists():
        print(f"writing a BERT-large-shaped TF1 checkpoint to {CKPT} ...", flush=True)
        subprocess.run([sys.executable, "-c", MAKE_CHECKPOINT, str(CKPT), json.dumps(LARGE)], check=True)
    data = next(CKPT.glob("bert_model.ckpt.data-*"))
    size = data.stat().st_size + Path(f"{prefix}.index").stat().st_size
    print(f"checkpoint: {size / 1e9:.2f} GB of TF1 variables in {CKPT}", flush=True)
    out = BENCH / "out"
    out.mkdir(exist_ok=True)
    bertvault = [sys.executable, "-m", "bertvault"]
    results: dict = {"checkpoint_bytes": size, "runs": args.runs}

    subprocess.run(["cat", str(data), str(prefix) + ".index"], stdout=subprocess.DEVNULL, check=True)  # warm cache
    print("TF1 -> safetensors", flush=True)
    copy_dir = out / "cp"
    results["cp_tf1"] = measure("cp (same bytes)", ["cp", str(data), f"{prefix}.index", str(copy_dir)], args.runs,
                                lambda: (remove(copy_dir)(), copy_dir.mkdir()))
    st_dir = out / "bertvault-st"
    results["bertvault_tf1_to_st"] = measure(
        "bertvault convert --to safetensors", [*bertvault, "convert", str(prefix), "--to", "safetensors",
                                              "--out", str(st_dir), "--no-check"], args.runs, remove(st_dir))
    results["bertvault_tf1_to_st_checked"] = measure(
        "  same, with --check", [*bertvault, "convert", str(prefix), "--to", "safetensors", "--out", str(st_dir),
                                 "--check"], 1, remove(st_dir))
    python = None if args.skip_hf else hf_venv()
    if python is not None:
        hf_dir = out / "hf4"
        env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
        results["hf_tf1_to_st"] = measure("transformers<5 TF->PyTorch + safetensors save",
                                          [str(python), "-c", HF_CONVERT, str(prefix), str(CKPT / "bert_config.json"),
                                           str(hf_dir)], args.runs, remove(hf_dir), env)
    else:
        results["hf_tf1_to_st"] = None

    st_file = st_dir / "model.safetensors"
    pt_file = out / "model.bin"
    st_again = out / "again.safetensors"
    print("safetensors <-> pt", flush=True)
    results["cp_st"] = measure("cp model.safetensors", ["cp", str(st_file), str(out / "cp.safetensors")], args.runs,
                               remove(out / "cp.safetensors"))
    results["bertvault_st_to_pt"] = measure("bertvault safetensors -> pt", [*bertvault, "convert", str(st_file),
                                            "--to", "pt", "--out", str(pt_file), "--no-check"], args.runs,
                                            remove(pt_file))
    results["cp_pt"] = measure("cp model.bin", ["cp", str(pt_file), str(out / "cp.bin")], args.runs,
                               remove(out / "cp.bin"))
    results["bertvault_pt_to_st"] = measure("bertvault pt -> safetensors", [*bertvault, "convert", str(pt_file),
                                            "--to", "safetensors", "--out", str(st_again), "--no-check",
                                            "--config", str(st_dir / "config.json")],
                                            args.runs, remove(st_again))

    ours, cp = results["bertvault_tf1_to_st"], results["cp_tf1"]
    ratios = {"tf1_to_st_vs_cp_time": ours["seconds"] / cp["seconds"],
              "st_to_pt_vs_cp_time": results["bertvault_st_to_pt"]["seconds"] / results["cp_st"]["seconds"],
              "pt_to_st_vs_cp_time": results["bertvault_pt_to_st"]["seconds"] / results["cp_pt"]["seconds"]}
    if results["hf_tf1_to_st"]:
        hf = results["hf_tf1_to_st"]
        ratios |= {"tf1_to_st_vs_hf_time": ours["seconds"] / hf["seconds"],
                   "tf1_to_st_vs_hf_peak_rss": ours["peak_rss"] / hf["peak_rss"]}
    results["ratios"] = ratios
    goals = {"tf1_to_st_vs_cp_time": 3.0, "st_to_pt_vs_cp_time": 2.0, "pt_to_st_vs_cp_time": 2.0,
             "tf1_to_st_vs_hf_time": 0.5, "tf1_to_st_vs_hf_peak_rss": 0.6}
    print("ratios (goal):")
    for key, value in ratios.items():
        verdict = "ok" if value <= goals[key] else "OVER"
        print(f"  {key:28} {value:6.2f}  (<= {goals[key]})  {verdict}")
    (BENCH / "bench_convert.json").write_text(json.dumps(results, indent=2))
    if not args.keep:
        shutil.rmtree(out)


if __name__ == "__main__":
    main()

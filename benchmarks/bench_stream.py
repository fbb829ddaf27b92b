"""Time to the first training step with `--data gs://...`: streamed, against pulling the whole prefix first.

    python benchmarks/bench_stream.py                         # 1 GiB of native shards, 2 rounds
    python benchmarks/bench_stream.py --size-mib 256 --rounds 3 --baseline /path/to/older/checkout

A prepared folder of random token ids (shards of about 2 MiB, the size `prepare` writes for 4 MB of
text) is uploaded to fake-gcs-server on loopback. Each round runs `bertvault pretrain` on a tiny BERT
with a fresh cache, from process start to its first metrics line (step 1):

- streamed: this checkout (the header, the vocab and the first shards, then training);
- whole pull: `--baseline` (a checkout from before streaming), which pulls every shard, verified,
  before its first step. Without `--baseline`, `bertvault pull` of the prefix plus a run on the
  pulled folder stands in for it;
- local: the same folder on local disk, the floor (start-up, model, first batch).

Loopback moves about as fast as a TPU VM reads its region's bucket; a slower link widens the gap in
proportion to the dataset's size. The scratch folder is deleted at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from _common import as_installed

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))
sys.path.insert(0, str(REPO / "tests" / "train"))
from conftest import small_vocab, write_tiny_bert  # noqa: E402  the tests' tiny BERT
from servers import FakeGcs, fake_gcs_binary  # noqa: E402

SHARD_TOKENS = 1 << 20  # 2 MiB of uint16 ids per shard
PAIR = 120  # tokens of one example (A + B), for seq-len 128


def build_folder(folder: Path, vocab: Path, size: int) -> int:
    """A native prepared folder of about `size` bytes of random examples; returns its shard count."""
    from bertvault.data import shards
    from bertvault.data.pairs import Pairs
    from bertvault.formats.vocab import vocab_sha256, vocab_tokens

    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    count = max(1, size // (2 * SHARD_TOKENS))
    vocab_size = len(vocab_tokens(vocab))
    entries = []
    for i in range(count):
        tokens = rng.integers(5, vocab_size, SHARD_TOKENS, dtype=np.int64)
        starts = np.arange(0, SHARD_TOKENS - PAIR, PAIR)
        index = np.stack([starts, np.full_like(starts, PAIR // 2), np.full_like(starts, PAIR // 2),
                          rng.integers(0, 2, len(starts))], axis=1)
        entries.append(shards.write_native(folder, f"part-{i:05d}", Pairs(tokens, index), "uint16"))
    shutil.copyfile(vocab, folder / shards.VOCAB)
    header = {"format": shards.FORMAT, "version": shards.VERSION, "kind": "native", "seq_len": 128,
              "vocab": {"file": shards.VOCAB, "sha256": vocab_sha256(vocab), "size": vocab_size},
              "lowercase": True, "dtype": "uint16",
              "options": {"max_predictions": 10, "masked_lm_prob": 0.15, "whole_word_mask": False},
              "counts": {"examples": sum(e["examples"] for e in entries)}, "shards": entries}
    shards.write_json(folder, shards.HEADER, header)
    return count


def first_step(checkout: Path, args: list[str], out: Path, env: dict) -> tuple[float, float]:
    """(seconds to the first metrics line, seconds to the end) of `bertvault ARGS` run from `checkout`."""
    started = time.monotonic()
    process = subprocess.Popen([sys.executable, "-m", "bertvault", *args], cwd=checkout, env={
        **env, "PYTHONPATH": str(checkout)}, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    metrics, first = out / "metrics.jsonl", None
    while process.poll() is None:
        if first is None and metrics.is_file() and metrics.stat().st_size:
            first = time.monotonic() - started
        time.sleep(0.01)
    if process.returncode:
        raise SystemExit(f"bertvault {' '.join(args)} failed:\n{process.stderr.read()[-2000:]}")
    return (first or time.monotonic() - started), time.monotonic() - started


def time_case(case: str, common: list[str], home: Path, out: Path, env: dict, folder: Path,
              baseline: Path | None) -> float:
    """Seconds to the first step of one case (see the module docstring)."""
    def on(data: str) -> list[str]:
        return ["pretrain", *[data if a == "gs://bench/data" else a for a in common], "--out", str(out)]

    if case == "streamed":
        return first_step(REPO, on("gs://bench/data"), out, env)[0]
    if case == "local":
        return first_step(REPO, on(str(folder)), out, env)[0]
    if baseline is not None:
        return first_step(baseline, on("gs://bench/data"), out, env)[0]
    pulled = first_step(REPO, ["pull", "gs://bench/data"], out, env)[1]
    return pulled + first_step(REPO, on(str(next((home / "artifacts").iterdir()))), out, env)[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size-mib", type=int, default=1024)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--baseline", type=Path,
                        help="a checkout that pulls gs:// data whole before training")
    options = parser.parse_args()
    as_installed()
    scratch = Path(tempfile.mkdtemp(prefix="bench-stream-"))
    server = FakeGcs(fake_gcs_binary())
    try:
        text = (REPO / "bertvault" / "resources" / "sample_text.txt").read_text(encoding="utf-8")
        tiny = write_tiny_bert(scratch / "tiny", small_vocab(text))
        count = build_folder(scratch / "data", tiny / "vocab.txt", options.size_mib << 20)
        total = sum(p.stat().st_size for p in (scratch / "data").iterdir())
        for path in sorted((scratch / "data").iterdir()):
            server.upload("bench", f"data/{path.name}", path.read_bytes())
        print(f"{count} shards, {total / 2**20:.0f} MiB in gs://bench/data (fake-gcs-server on loopback)")
        common = ["--from", str(tiny), "--data", "gs://bench/data", "--steps", "2", "--log-every", "1",
                  "--batch-size", "8", "--seq-len", "128", "--max-predictions", "10", "--save-every", "0"]
        env = {**os.environ, "STORAGE_EMULATOR_HOST": server.endpoint, "OMP_NUM_THREADS": "1"}
        times: dict[str, list[float]] = {"streamed": [], "whole pull": [], "local": []}
        for round_ in range(options.rounds):
            cases = list(times) if round_ % 2 == 0 else list(reversed(times))
            for case in cases:
                home, out = scratch / f"home-{case[0]}{round_}", scratch / f"out-{case[0]}{round_}"
                seconds = time_case(case, common, home, out, {**env, "BERTVAULT_HOME": str(home)},
                                    scratch / "data", options.baseline)
                times[case].append(seconds)
                print(f"round {round_ + 1}: {case}: first step after {seconds:.1f} s", flush=True)
                shutil.rmtree(home, ignore_errors=True)
        print(json.dumps({case: {"median_s": round(statistics.median(t), 2), "best_s": round(min(t), 2)}
                          for case, t in times.items()}))
    finally:
        server.close()
        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()

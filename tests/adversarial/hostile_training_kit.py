"""Shared parts of the hostile-input tests for training and data preparation: a tiny BERT, data, and
`bertvault` run as a user runs it, in a session of its own so that every process it leaves
behind can be found."""

from __future__ import annotations

import collections
import os
import re
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SAMPLE_TEXT = REPO / "bertvault" / "resources" / "sample_text.txt"
TINY_RUN = ["--batch-size", "4", "--seq-len", "64", "--max-predictions", "10", "--log-every", "1"]


def _vocab(text: str) -> list[str]:
    lowered = text.lower()
    chars = sorted({c for c in lowered if not c.isspace()})
    counts = collections.Counter(re.findall(r"[a-z]+", lowered))
    words = [w for w, _ in counts.most_common(300) if len(w) > 1]
    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    return list(dict.fromkeys([*specials, *chars, *(f"##{c}" for c in chars), *words]))


def write_tiny_model(folder: Path) -> Path:
    """An HF folder: BertForPreTraining, 2 layers of 32, a vocab of the sample text's words."""
    import torch
    from transformers import BertConfig, BertForPreTraining

    vocab = _vocab(SAMPLE_TEXT.read_text(encoding="utf-8"))
    torch.manual_seed(0)
    config = BertConfig(vocab_size=len(vocab), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=128)
    BertForPreTraining(config).save_pretrained(folder)
    (folder / "vocab.txt").write_text("\n".join(vocab) + "\n", encoding="utf-8")
    (folder / "tokenizer_config.json").write_text('{"do_lower_case": true}', encoding="utf-8")
    return folder


def write_prepared(out: Path, model: Path) -> Path:
    """The sample text as native shards (seq 64) with the tiny model's vocab."""
    from bertvault.data import prepare

    options = prepare.Options(seq_len=64, max_predictions=10, seed=1, dupe_factor=4)
    prepare.run(prepare.plan([str(SAMPLE_TEXT)], str(model / "vocab.txt"), str(out), options, lowercase=True))
    return out


def write_big_corpus(path: Path) -> Path:
    """About 36 MB of text in 24,000 documents: nine work items for `prepare`, a second or two of work
    (the same text again and again costs prepare's memo of words little: 9 MB took 0.3 s)."""
    path.write_text((SAMPLE_TEXT.read_text(encoding="utf-8") + "\n\n") * 8000, encoding="utf-8")
    return path


def session_processes(sid: int) -> list[str]:
    """Processes still in session `sid` (what a run left behind), as 'pid command'."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            cmdline = (stat.parent / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except (OSError, IndexError):
            continue
        if int(fields[3]) == sid and fields[0] != "Z":  # field 6 of stat: the session id
            found.append(f"{stat.parent.name} {cmdline[:120]}")
    return found


def wait_for_no_processes(sid: int, seconds: float = 10) -> list[str]:
    deadline = time.monotonic() + seconds
    while (left := session_processes(sid)) and time.monotonic() < deadline:
        time.sleep(0.1)
    return left


def start(*args, env: dict | None = None) -> subprocess.Popen:
    """`bertvault ARGS` in a new session (its pid is the session id)."""
    full_env = {**os.environ, "OMP_NUM_THREADS": "1", **(env or {})}
    return subprocess.Popen([sys.executable, "-m", "bertvault", *map(str, args)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=full_env, start_new_session=True)


@dataclass
class Finished:
    returncode: int
    stdout: str
    stderr: str
    left_behind: list[str]

    @property
    def error_line(self) -> str:
        """The one `error:` line; fails the test on a traceback or on more than one error line."""
        assert "Traceback" not in self.stderr, self.stderr[-3000:]
        errors = [line for line in self.stderr.splitlines() if line.startswith("error:")]
        assert len(errors) == 1 and self.stderr.rstrip("\n").endswith(errors[0]), self.stderr[-3000:]
        return errors[0]


def finish(process: subprocess.Popen, timeout: float) -> Finished:
    """Waits at most `timeout` s (a hang fails the test, after killing the whole session)."""
    try:
        stdout, stderr = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        stdout, stderr = process.communicate()
        raise AssertionError(f"bertvault did not exit within {timeout} s:\n{stderr[-3000:]}") from None
    return Finished(process.returncode, stdout, stderr, wait_for_no_processes(process.pid))


def run(*args, timeout: float = 120, env: dict | None = None) -> Finished:
    return finish(start(*args, env=env), timeout)


def wait_for(predicate, process: subprocess.Popen, timeout: float = 60, poll: float = 0.02) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if process.poll() is not None:
            raise AssertionError(f"the run ended (exit {process.returncode}) too early:\n"
                                 f"{process.stderr.read()[-3000:]}")
        if time.monotonic() > deadline:
            os.killpg(process.pid, signal.SIGKILL)
            raise AssertionError(f"nothing happened within {timeout} s")
        time.sleep(poll)

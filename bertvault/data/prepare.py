"""`bertvault prepare`: raw text, AzureML shards or TFRecords → pretraining examples on disk.

`plan` checks everything it can before any work (inputs, vocab, options, output folder) and
reports every problem at once; `run` does the work. Text is cut into chunks of whole documents
(about 4 MB); each chunk, AzureML shard or TFRecord file is one work item, processed by `workers`
processes (this one and `workers - 1` helpers) and written as one shard by the process that made
it. Each item draws from its own seed (seed, item number), so the output does not depend on the
number of workers. Random-next B sentences come from another document of the same chunk
(thousands of documents for Wikipedia-like text).

A work item is a plain function call: `_init(job)` once in a process, then `_process(number, kind,
payload)` per item, which writes the item's shard into `job.staging` and returns (number, shard
entry, counts); `Totals.add` gathers the returns, `_header` and `Staging.commit` finish the run.

Defaults: --dupe-factor 1 for `native` (masking is dynamic, so every epoch already sees new
masks; 10 copies would only cost 10× the disk), 10 for `tfrecord` (google's default: the masks
are fixed in the file). --seq-len 128 for text; for AzureML shards 512 (their published length)
and for TFRecords the length of their first record, so converting keeps examples whole.
"""

from __future__ import annotations

import concurrent.futures as cf
import contextlib
import ctypes
import glob
import hashlib
import logging
import multiprocessing
import os
import random
import shutil
import signal
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np

from bertvault import sources
from bertvault.data import azureml, features, inputs, pairs, shards, tfrecord
from bertvault.data.vocab import VocabInfo, locate
from bertvault.errors import DataError, ManifestError, UsageError, raise_if
from bertvault.io import lifetime

log = logging.getLogger(__name__)

FORMATS = ("native", "tfrecord")
NOT_IN_HEADER = ("workers", "chunk_bytes", "engine", "ray_address")  # options the bytes do not depend on
MIN_SEQ_LEN = 8
CHUNK_BYTES = 4 << 20
AZUREML_SEQ_LEN = 512
PIECE_SENTENCES = 100  # a chunk that is one long document is split into pieces this long for NSP
# Pool workers are forked where that is safe (Linux): one starts in milliseconds with all it needs
# imported, where a spawned one spends ~0.3 CPU-seconds importing. This process has not used the
# tokenizers thread pool when it forks (parallelism is off while it works on items), and a worker
# takes standard streams of its own (lifetime.own_std_streams).
START = "fork" if sys.platform == "linux" else "spawn"
M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # glibc's mallopt parameters


@dataclass(frozen=True)
class Options:
    seq_len: int | None = None  # None: see the module docstring
    max_predictions: int = 20
    masked_lm_prob: float = 0.15
    dupe_factor: int | None = None  # None: 1 for native, 10 for tfrecord
    short_seq_prob: float = 0.1
    whole_word_mask: bool = False
    seed: int = 12345
    workers: int = 1
    format: str = "native"
    chunk_bytes: int = CHUNK_BYTES
    engine: str = "local"  # where the items run: ENGINES
    ray_address: str = "auto"  # --engine ray: the cluster (auto: RAY_ADDRESS or this machine's)


@dataclass
class Plan:
    files: list[inputs.InputFile]
    vocab: VocabInfo
    options: Options  # with seq_len and dupe_factor filled in
    out: Path
    notes: list[str] = field(default_factory=list)
    remote: str | None = None  # gs://bucket/prefix: `out` is a local staging folder the command pushes there

    @property
    def total_bytes(self) -> int:
        return sum(f.size for f in self.files)


def _default_seq_len(files: list[inputs.InputFile]) -> int:
    lengths = [128]
    for f in files:
        if f.kind == "azureml":
            lengths.append(AZUREML_SEQ_LEN)
        elif f.kind == "tfrecord":
            first = tfrecord.first_record(f.path)
            lengths.append(len(tfrecord.decode_example(first, str(f.path))["input_ids"]))
    return max(lengths)


def _check_options(o: Options, out: str) -> list[str]:
    """The options' own problems, said before any input or vocab is read (exit 2, as every bad option)."""
    problems = [f"{flag} must be one of {', '.join(choices)}, got {given!r}"
                for flag, given, choices in (("--format", o.format, FORMATS), ("--engine", o.engine, ENGINES))
                if given not in choices]
    if "://" in out and not out.startswith("gs://"):
        problems.append(f"--out {out}: remote output goes to gs://BUCKET/PREFIX; other schemes are not "
                        "supported")
    if o.seq_len is not None and o.seq_len < MIN_SEQ_LEN:
        problems.append(f"--seq-len {o.seq_len} is below {MIN_SEQ_LEN}: too short for [CLS] A [SEP] B [SEP]")
    if o.max_predictions < 1:
        problems.append(f"--max-predictions must be at least 1, got {o.max_predictions}")
    if not 0 < o.masked_lm_prob <= 1:
        problems.append(f"--masked-lm-prob must be in (0, 1], got {o.masked_lm_prob}")
    if not 0 <= o.short_seq_prob <= 1:
        problems.append(f"--short-seq-prob must be in [0, 1], got {o.short_seq_prob}")
    if o.dupe_factor is not None and o.dupe_factor < 1:
        problems.append(f"--dupe-factor must be at least 1, got {o.dupe_factor}")
    if o.workers < 1:
        problems.append(f"--workers must be at least 1, got {o.workers}")
    if o.chunk_bytes < 1:
        problems.append(f"chunk size must be positive, got {o.chunk_bytes}")
    return problems


def _check_fit(o: Options, vocab: VocabInfo) -> list[str]:
    """The options against the checkpoint and the inputs (once the default --seq-len is known)."""
    problems = []
    if vocab.max_positions is not None and o.seq_len > vocab.max_positions:
        problems.append(f"--seq-len {o.seq_len} exceeds the checkpoint's {vocab.max_positions} positions; "
                        f"use at most {vocab.max_positions}")
    if o.seq_len >= MIN_SEQ_LEN and o.max_predictions > o.seq_len - 3:
        problems.append(f"--max-predictions must be between 1 and seq-len - 3 ({o.seq_len - 3}), "
                        f"got {o.max_predictions}")
    return problems


def _memory_notes(files: list[inputs.InputFile], workers: int) -> list[str]:
    shards_in = [f for f in files if f.kind == "azureml"]
    if not shards_in:
        return []
    largest = max(shards_in, key=lambda f: f.size)
    at_once = min(workers, len(shards_in))
    need = azureml.memory_estimate(largest.path) * at_once
    notes = [(
        f"{len(shards_in)} AzureML shard(s), largest {largest.size / 1e9:.2f} GB ({largest.path.name}): "
        "a shard is one "
        f"pickle loaded whole, about {azureml.memory_factor(largest.path)}x its size in memory; "
        f"{at_once} at a time (--workers) need about {need / 1e9:.1f} GB"
    )]
    free = azureml.available_memory()
    if free is not None and need > free:
        notes.append(f"warning: only {free / 1e9:.1f} GB of memory is available: lower --workers or free "
                     "memory")
    return notes


def plan(specs: list[str], vocab_from: str, out: str, options: Options,
         lowercase: bool | None = None) -> Plan:
    raise_if(_check_options(options, out), UsageError)
    remote = None
    if "://" in out:
        remote = out.rstrip("/")
        out = str(_staging_for(remote))
        shutil.rmtree(out, ignore_errors=True)  # a staging folder left by an interrupted run
    shards.check_out(Path(out).expanduser())
    local, problems = [], []
    for spec in specs:
        try:
            local.append(_local(spec))
        except ManifestError as exc:  # neither a path nor a registered dataset: said with the others
            problems.extend(exc.problems)
    files = inputs.classify(local, problems)
    vocab = locate(vocab_from, lowercase)
    resolved = replace(
        options,
        seq_len=options.seq_len or _default_seq_len(files),
        dupe_factor=options.dupe_factor or (1 if options.format == "native" else 10),
    )
    raise_if(_check_fit(resolved, vocab), UsageError)
    notes = [(f"vocab {vocab.path} ({vocab.size} tokens), {'uncased' if vocab.lowercase else 'cased'} "
              f"from {vocab.case_from}")]
    notes += _memory_notes(files, resolved.workers)
    return Plan(files, vocab, resolved, Path(out).expanduser(), notes, remote)


def _local(spec: str) -> str:
    """An input on this machine: a path or glob as given; a registered dataset's cache folder; a
    gs:// (or other URL) input pulled into the cache first, verified like any download."""
    if glob.has_magic(spec) and "://" not in spec:
        return spec  # inputs.expand matches it, and says so when nothing does
    return str(sources.resolve(spec).path)


def _staging_for(remote: str) -> Path:
    """Where shards for a gs:// output are built before the command uploads them."""
    from bertvault.cache import layout

    return layout.partial_dir() / "prepare" / hashlib.sha256(remote.encode()).hexdigest()[:16]


# ---- work items, run in worker processes ----------------------------------------------------

@dataclass(frozen=True)
class Job:
    vocab: Path
    lowercase: bool
    options: Options
    staging: Path
    dtype: str


_state: dict = {}


def _init(job: Job, parent: int | None = None) -> None:
    """Sets up a worker; `parent`: the pid of the process that started this pool worker."""
    _keep_freed_memory()
    if parent is not None:
        lifetime.leave_stop_signals_to_parent()  # Ctrl-C is the parent's: it stops the workers
        lifetime.die_with_parent(parent)  # a killed prepare leaves no worker waiting forever
        os.environ["TOKENIZERS_PARALLELISM"] = "false"  # a process per core: its threads would contend
        lifetime.own_std_streams()
        if _state.get("job") == job:  # forked: the parent's set-up (and tokenizer) came along
            return
    from bertvault.formats.vocab import read_vocab, vocab_tokens

    tokens = vocab_tokens(job.vocab)
    vocab = read_vocab(job.vocab)
    o = job.options
    _state.clear()
    _state.update(job=job, vocab=vocab, specials=features.Specials.of(vocab),
                  spec=features.mask_spec(tokens, vocab, o.max_predictions, o.masked_lm_prob,
                                          o.whole_word_mask))


def _keep_freed_memory() -> None:
    """glibc hands a freed block over ~128 KB back to the system and maps the next one afresh, so
    every few-MB array of every item pays its page faults again (a sixth of prepare's CPU time, in
    the kernel). For this process from now on: blocks up to 64 MB come from the heap, and up to
    256 MB freed stays there."""
    mallopt = getattr(_libc(), "mallopt", None)
    if mallopt is not None:
        mallopt(M_MMAP_THRESHOLD, 64 << 20)
        mallopt(M_TRIM_THRESHOLD, 256 << 20)


def _libc():
    try:
        return ctypes.CDLL(None)
    except OSError:
        return None


def _encoder():
    if "encoder" not in _state:
        import pyarrow.compute  # noqa: F401 (imported before a fork, not once in every helper)

        from bertvault.data.tokenizer import LineEncoder

        job = _state["job"]
        _state["encoder"] = LineEncoder(job.vocab, job.lowercase)
    return _state["encoder"]


def _text_pairs(data: bytes, rng: random.Random, o: Options) -> pairs.Pairs:
    try:
        text = data.decode("utf-8")
        replaced = 0
    except UnicodeDecodeError:
        text = data.decode("utf-8", "replace")
        replaced = 1
    lines = [line.strip() for line in text.split("\n")]
    ids, counts = _encoder().encode_lines(lines)
    blank = np.fromiter((not line for line in lines), dtype=bool, count=len(lines))
    doc_of_line = np.cumsum(blank)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    kept = np.flatnonzero(counts > 0)  # google drops lines that tokenize to nothing
    docs, first_sentence = np.unique(doc_of_line[kept], return_index=True)
    bounds = np.append(first_sentence, len(kept)).tolist()
    pieces = len(docs) == 1 and len(kept) >= 2 * PIECE_SENTENCES
    if pieces:  # one document (no blank line): random next sentences come from its other pieces
        bounds = [*range(0, len(kept) - PIECE_SENTENCES, PIECE_SENTENCES), len(kept)]
    builder = pairs.PairBuilder(o.seq_len, o.short_seq_prob, rng)
    sentence_starts, sentence_lens = starts[kept].tolist(), counts[kept].tolist()
    order = list(range(len(bounds) - 1))
    rng.shuffle(order)
    for _ in range(o.dupe_factor):
        for doc in order:
            builder.add_document(doc, sentence_starts, sentence_lens, bounds)
    rows = np.asarray(builder.rows, dtype=np.int64).reshape(-1, 5)
    rows = rows[np.random.default_rng(rng.getrandbits(64)).permutation(len(rows))]
    result = pairs.gather(ids, rows)
    result.stats = {"documents": len(docs), "sentences": len(kept), "text_bytes": len(data),
                    "no_random_doc": builder.no_random_doc, "invalid_utf8_chunks": replaced}
    return result


def _azureml_pairs(path: Path, rng: random.Random, o: Options) -> pairs.Pairs:
    instances = azureml.load(path)
    result = azureml.to_pairs(instances, _state["vocab"])
    del instances
    return result


def _tfrecord_pairs(path: Path, rng: random.Random, o: Options) -> pairs.Pairs:
    chunks, rows, start = [], [], 0
    for number, data in enumerate(tfrecord.records(path)):
        a, b, label = features.pair_from_google(tfrecord.decode_example(data, f"{path} record {number}"))
        chunks += [a, b]
        rows.append((start, len(a), len(b), label))
        start += len(a) + len(b)
    tokens = np.concatenate(chunks) if chunks else np.zeros(0, np.int64)
    return pairs.Pairs(tokens, np.asarray(rows, dtype=np.int64).reshape(-1, 4), {"records": len(rows)})


READERS: dict[str, Callable] = {"text": _text_pairs, "azureml": _azureml_pairs, "tfrecord": _tfrecord_pairs}


def _process(number: int, kind: str, payload, staging: Path | None = None) -> tuple[int, dict | None, dict]:
    """One work item → one shard in `staging` (the job's staging folder if not given): (item number,
    shard entry, stats)."""
    job: Job = _state["job"]
    staging = staging or job.staging
    o = job.options
    rng = random.Random(f"{o.seed}:{number}")
    result = READERS[kind](payload, rng, o)
    result, truncated = pairs.truncate_pairs(result, o.seq_len - 3, rng)
    stats = dict(result.stats)
    index = result.index
    stats.update(examples=len(result), tokens=len(result.tokens), truncated=truncated,
                 random_next=int(index[:, 3].sum()) if len(index) else 0)
    if not len(result):
        return number, None, stats
    stem = f"part-{number:05d}"
    if o.format == "native":
        entry = shards.write_native(staging, stem, result, job.dtype)
    else:
        mask_rng = np.random.default_rng([o.seed, number])
        specials, spec = _state["specials"], _state["spec"]
        entry = shards.write_tfrecord(staging, stem, result, o.seq_len, specials, spec, mask_rng)
    return number, entry, stats


def work_item(job: Job, number: int, kind: str, payload, staging: Path) -> tuple[int, dict | None, dict]:
    """`_process` in a process that an engine of its own started (a Ray worker serves many tasks): set
    up on the first item of a job, then each item's shard written into `staging`."""
    if _state.get("job") != job:
        _init(job)
    return _process(number, kind, payload, staging)


# ---- orchestration -------------------------------------------------------------------------

@dataclass
class Totals:
    counts: Counter = field(default_factory=Counter)
    unknown: Counter = field(default_factory=Counter)
    entries: dict[int, dict] = field(default_factory=dict)

    def add(self, number: int, entry: dict | None, stats: dict) -> None:
        if entry is not None:
            self.entries[number] = entry
        self.unknown.update(stats.pop("unknown", {}))
        self.counts.update({k: v for k, v in stats.items() if isinstance(v, int)})


def _items(plan: Plan, warn_single) -> Iterator[tuple[str, object, int]]:
    """(kind, payload, on-disk bytes) for every work item, in a fixed order."""
    text = [f for f in plan.files if f.kind == "text"]
    for chunk in inputs.text_chunks(text, plan.options.chunk_bytes, warn_single):
        yield "text", chunk.data, chunk.bytes_read
    for f in plan.files:
        if f.kind != "text":
            yield f.kind, f.path, f.size


def _warn_single(path: Path, lines: int, cuts: int) -> None:
    log.warning("%s has no blank line: its %d lines are read as one document (a blank line ends a document); "
                "random next sentences for it come from other documents or from distant parts of it",
                path, lines)


Report = Callable[[int, int, int], None]  # (on-disk bytes, documents, examples) just done


def run(plan: Plan, report: Report | None = None) -> dict:
    """Do the work; return the header written to the output folder."""
    o = plan.options
    report = report or (lambda *_: None)
    totals = Totals()
    began = time.perf_counter()
    with _terminate_as_interrupt():
        staging = shards.Staging(plan.out)
        job = Job(plan.vocab.path, plan.vocab.lowercase, o, staging.path, shards.token_dtype(plan.vocab.size))
        try:
            # closing(): an interrupt between two items stops the pool before the staging folder goes
            work = ENGINES[o.engine](job, _items(plan, _warn_single), plan, report)
            with contextlib.closing(work) as results:
                for number, entry, stats in results:
                    totals.add(number, entry, stats)
            if not totals.entries:
                raise DataError(_nothing_made(totals.counts, o))
            header = _header(plan, totals, time.perf_counter() - began)
            staging.commit(header, plan.vocab.path)
            if o.engine == "ray":
                from bertvault.data import ray_engine

                ray_engine.finished(plan)
        except BaseException:
            staging.abort()
            raise
    _log_summary(totals, plan)
    return header


@contextlib.contextmanager
def _terminate_as_interrupt() -> Iterator[None]:
    """SIGTERM stops the work as Ctrl-C does (the staging folder is removed) instead of killing the
    process where it stands. Main thread only; elsewhere signals are not ours to handle."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum, frame):
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _on_this_machine(job: Job, items: Iterator, plan: Plan, report: Report) -> Iterator[tuple]:
    text = any(f.kind == "text" for f in plan.files)
    return _execute(job, items, plan.options.workers, report, text)


def _on_ray(job: Job, items: Iterator, plan: Plan, report: Report) -> Iterator[tuple]:
    from bertvault.data import ray_engine  # Ray is imported by that engine only

    return ray_engine.execute(job, items, plan, report)


def _execute(job: Job, items: Iterator, workers: int, report: Report, text: bool = True) -> Iterator[tuple]:
    """(item number, shard entry, stats) of every item. --workers N is N processes at work: this one
    and N - 1 started ones, each using one core. `text`: whether some item is text."""
    def done(result, size):
        stats = result[2]
        report(size, stats.get("documents", 0), stats.get("examples", 0))
        return result

    with _one_thread_each():
        _init(job)
        if text and workers > 1 and START == "fork":  # helpers fork with the tokenizer built and imported
            _encoder()
        if workers == 1:
            for number, (kind, payload, size) in enumerate(items):
                yield done(_process(number, kind, payload), size)
            return
        with contextlib.closing(_pooled(job, items, workers - 1)) as results:
            for result, size in results:
                yield done(result, size)


@contextlib.contextmanager
def _one_thread_each() -> Iterator[None]:
    """The tokenizers library's thread pool off while this process works on items: one core per
    worker, as pool workers have it (`_init`)."""
    before = os.environ.get("TOKENIZERS_PARALLELISM")
    os.environ["TOKENIZERS_PARALLELISM"] = "false"
    try:
        yield
    finally:
        if before is None:
            os.environ.pop("TOKENIZERS_PARALLELISM", None)
        else:
            os.environ["TOKENIZERS_PARALLELISM"] = before


def _pooled(job: Job, items: Iterator, helpers: int) -> Iterator[tuple]:
    """(result, size) of each item, from this process and a pool of `helpers` processes (`START`).
    This process keeps each helper one item ahead and takes the next item itself, so it is at work
    from the first moment and no helper waits for more while it works. On any failure or interrupt
    the helpers are killed at once (their output is in the staging folder, which is removed anyway)."""
    context = multiprocessing.get_context(START)
    with cf.ProcessPoolExecutor(helpers, mp_context=context, initializer=_init,
                                initargs=(job, os.getpid())) as pool:
        running: dict[cf.Future, int] = {}
        numbered = enumerate(items)
        try:
            while True:
                while len(running) < 2 * helpers:  # bounded read-ahead: the corpus never sits in memory
                    step = next(numbered, None)
                    if step is None:
                        break
                    number, (kind, payload, size) = step
                    with lifetime.stop_signals_blocked():  # submit may start a worker
                        running[pool.submit(_process, number, kind, payload)] = size
                finished = [future for future in running if future.done()]
                if not finished:
                    step = next(numbered, None)
                    if step is not None:  # this process's share
                        number, (kind, payload, size) = step
                        yield _process(number, kind, payload), size
                        continue
                    if not running:
                        return
                    finished, _ = cf.wait(running, return_when=cf.FIRST_COMPLETED)
                for future in finished:
                    yield future.result(), running.pop(future)
        except cf.process.BrokenProcessPool:
            raise DataError("a worker process died (killed for lack of memory?); run again with fewer "
                            "--workers") from None
        except BaseException:
            _kill_workers(pool)
            raise


def _kill_workers(pool: cf.ProcessPoolExecutor) -> None:
    kill = getattr(pool, "kill_workers", None)  # Python 3.14
    if kill is not None:
        kill()
    else:
        for process in list((getattr(pool, "_processes", None) or {}).values()):
            process.kill()
    pool.shutdown(wait=True, cancel_futures=True)


# (job, items, plan, report) -> (item number, shard entry, stats) per item, shards in job.staging
ENGINES: dict[str, Callable[..., Iterator[tuple]]] = {"local": _on_this_machine, "ray": _on_ray}


def _nothing_made(counts: Counter, o: Options) -> str:
    if counts["documents"] or counts["records"]:
        return (f"no examples: the inputs hold {counts['documents']} document(s) and "
                f"{counts['sentences']} sentence(s); "
                "a pair needs two sentences or two documents")
    return "no examples: the inputs hold no text (only blank lines?)"


def _header(plan: Plan, totals: Totals, seconds: float) -> dict:
    o = plan.options
    c = totals.counts
    entries = [totals.entries[k] for k in sorted(totals.entries)]
    return {
        "format": shards.FORMAT,
        "version": shards.VERSION,
        "kind": o.format,
        "vocab": {"file": shards.VOCAB, "sha256": plan.vocab.sha256, "size": plan.vocab.size,
                  "source": str(plan.vocab.path)},
        "lowercase": plan.vocab.lowercase,
        "case_from": plan.vocab.case_from,
        "dtype": shards.token_dtype(plan.vocab.size) if o.format == "native" else "int64",
        "options": {k: v for k, v in asdict(o).items() if k not in NOT_IN_HEADER},
        "seq_len": o.seq_len,
        "counts": {
            "examples": c["examples"], "tokens": c["tokens"], "random_next": c["random_next"],
            "documents": c["documents"], "sentences": c["sentences"], "text_bytes": c["text_bytes"],
            "truncated": c["truncated"], "no_random_doc": c["no_random_doc"],
            "azureml_strings": c["strings"], "unknown_strings": c["unknown_count"],
            "tfrecord_records": c["records"],
        },
        "unknown_strings": dict(totals.unknown.most_common(20)),
        "sources": [{"path": str(f.path), "kind": f.kind, "bytes": f.size} for f in plan.files],
        "shards": entries,
        "seconds": round(seconds, 2),
    }


def _log_summary(totals: Totals, plan: Plan) -> None:
    c = totals.counts
    if c["unknown_count"]:
        share = c["unknown_count"] / max(1, c["strings"])
        common = ", ".join(repr(t) for t, _ in totals.unknown.most_common(5))
        log.warning("%d of %d AzureML token strings (%.2f%%) are not in %s and became [UNK] "
                    "(most common: %s)%s",
                    c["unknown_count"], c["strings"], 100 * share, plan.vocab.path, common,
                    "; is this the vocab the shards were made with?" if share > 0.01 else "")
    if c["no_random_doc"]:
        log.warning("%d one-sentence chunks were dropped: a random next sentence needs another document, "
                    "and a "
                    "chunk held only one (add blank lines between documents)", c["no_random_doc"])
    if c["truncated"]:
        log.info("%d pairs were cut to --seq-len %d", c["truncated"], plan.options.seq_len)
    if c["invalid_utf8_chunks"]:
        log.warning("%d chunks held invalid UTF-8; those bytes became U+FFFD", c["invalid_utf8_chunks"])

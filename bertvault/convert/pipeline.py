"""convert = read into the canonical form, plan the target's names, write atomically, check numerically."""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path

from bertvault import formats
from bertvault.convert import config as configs
from bertvault.convert.canonical import Canonical, load_canonical
from bertvault.convert.engine import plan_write
from bertvault.convert.keymap import load_keymap
from bertvault.errors import ConversionError
from bertvault.formats.base import WriteJob
from bertvault.formats.tensors import target_dtype
from bertvault.io import space
from bertvault.io.atomic import atomic_output, remove
from bertvault.sources import Source, resolve

log = logging.getLogger(__name__)


@dataclass
class ConvertResult:
    out: Path
    source_format: str
    target_format: str
    tensors: int
    bytes: int
    dropped: dict[str, list[str]]
    heads: list[str]
    left_out: list[str]
    seconds: float
    check: object | None = None  # check.CheckResult


def default_output(canonical: Canonical, to: str) -> Path:
    """A registered name: the cache's converted/<name>/<to>. A weights file: a file beside it when
    the target is a single-file format, else `<stem>-<to>/`. A folder or TF prefix: `<folder>-<to>/`."""
    if canonical.artifact is not None:
        from bertvault.cache import layout

        return layout.converted_dir(canonical.artifact, to)
    origin = canonical.origin
    weights = canonical.source if canonical.source is not None else origin.path
    spec = formats.get(to)
    if weights.is_file():
        stem = weights.name.split(".")[0]
        if spec.file_suffixes and not weights.name.endswith(".index.json"):
            candidate = weights.with_name(stem + spec.file_suffixes[0])
            if candidate != weights:
                return candidate
            return weights.with_name(f"{stem}-{to}{spec.file_suffixes[0]}")
        return weights.with_name(f"{stem}-{to}")
    folder = origin.path if origin.path.is_dir() else weights.parent
    return folder.parent / f"{folder.name}-{to}"


def _refuse_existing(out: Path, force: bool) -> None:
    if (out.exists() or out.is_symlink()) and not force:
        kind = "folder" if out.is_dir() else "file"
        raise ConversionError(f"output {kind} {out} exists; pass --force to replace it, or --out elsewhere")


def _writable_place(out: Path) -> None:
    """--out must be creatable: not below a regular file, not on a read-only disk."""
    parent = next((p for p in (out.parent, *out.parent.parents) if p.exists()), None)
    if parent is not None and not parent.is_dir():
        raise ConversionError(f"--out {out}: {parent} is a file, not a folder; choose another --out")
    if parent is not None and not os.access(parent, os.W_OK | os.X_OK):
        raise ConversionError(f"--out {out}: cannot write in {parent} (read-only or no permission); "
                              "choose another --out")


def save_canonical(canonical: Canonical, out: Path, to: str, *, dtype: str = "keep", force: bool = False,
                   drop_heads: bool = False, max_shard_size: int | None = None,
                   finish=None) -> tuple[int, int, list[str]]:
    """Write `canonical` as format `to` at `out` (a folder, or a file when `out` ends in one of the
    format's suffixes). Returns (tensors, bytes, heads left out). `finish(temp_path, single_file)`
    runs before the output takes its final name (the check, the record), so a failure there leaves
    nothing behind."""
    spec = formats.get(to)
    writer = spec.writer()
    single_file = bool(spec.file_suffixes) and out.suffix in spec.file_suffixes
    _refuse_existing(out, force)
    _writable_place(out)
    plan, left_out = plan_write(load_keymap(spec.keymap), canonical.tensors, canonical.config,
                                drop_heads=drop_heads)
    cast = target_dtype(dtype)
    plan = [(name, tensor.cast(cast)) for name, tensor in plan]
    groups = [g for g in canonical.groups if g not in left_out]
    job = WriteJob(plan, configs.finalize(canonical.config, groups, canonical.report.num_labels),
                   canonical.vocab_path, canonical.lowercase,
                   {a: o for a, o in canonical.tied.items() if "mlm" in groups}, single_file, max_shard_size)
    try:
        with atomic_output(out, force=force) as temp:
            writer(temp, job)
            if finish is not None:
                finish(temp, single_file)
    except FileExistsError:
        _refuse_existing(out, force)
        raise
    except OSError as exc:
        if space.is_full(exc):
            raise ConversionError(f"{space.no_space(out.parent)}: nothing was written; free some space or "
                                  "write elsewhere with --out") from None
        raise ConversionError(f"cannot write {out}: {exc.strerror or exc}") from None
    return len(plan), sum(t.nbytes for _, t in plan), left_out


def export_hf(canonical: Canonical, out: Path, *, force: bool = False, dtype: str = "keep") -> Path:
    """An HF model folder (what `pretrain --export hf` writes)."""
    save_canonical(canonical, out, "hf", dtype=dtype, force=force)
    return out


def export_tf1(canonical: Canonical, out: Path, *, force: bool = False, dtype: str = "keep") -> Path:
    """A google-research/bert TF1 checkpoint folder (what `pretrain --export tf1` writes)."""
    save_canonical(canonical, out, "tf1", dtype=dtype, force=force)
    return out


def _output_for(canonical: Canonical, to: str, out: Path | None, force: bool) -> Path:
    """--out (or the default place), checked against the target format before anything is written."""
    spec = formats.get(to)
    out = Path(out) if out is not None else default_output(canonical, to)
    if out.suffix in formats.WEIGHT_SUFFIXES and out.suffix not in spec.file_suffixes:
        what = (f"a {to} file ends in {' or '.join(spec.file_suffixes)}" if spec.file_suffixes
                else f"{to} is written as a folder")
        raise ConversionError(f"--out {out}: {what}")
    _refuse_existing(out, force)
    return out


@dataclass
class _Finishing:
    """What happens to an output after its tensors are written: the check, then the provenance
    record (inside a folder before it takes its name; beside a lone file after)."""

    canonical: Canonical
    to: str
    dtype: str
    check: bool
    describing: object  # provenance.Describing: the source's hashes, read while the conversion runs
    result: object | None = None  # check.CheckResult

    def __call__(self, temp: Path, single_file: bool) -> None:
        if self.check:
            from bertvault.convert.check import check_conversion

            self.result = check_conversion(self.canonical, temp, self.to, self.dtype,
                                           single_file=single_file)
        if temp.is_dir():
            self.record(temp)

    def record(self, output: Path) -> None:
        _record(output, self.canonical, self.to, self.result, self.describing.result(), self.dtype)

    def record_beside(self, out: Path) -> None:
        """A lone weights file: its record goes beside it, or neither stays."""
        try:
            self.record(out)
        except OSError as exc:
            remove(out)
            raise ConversionError(f"{out}: its provenance record could not be written ({exc.strerror}), so "
                                  "the output was removed; free some space or write elsewhere with --out"
                                  ) from None


def convert(source: Source | str | Path, to: str, *, out: Path | None = None, dtype: str = "keep",
            from_format: str | None = None, force: bool = False, check: bool | None = None,
            config: Path | None = None, vocab: Path | None = None, drop_heads: bool = False,
            max_shard_size: int | None = None) -> ConvertResult:
    """`bertvault convert`: any readable format -> any writable one, with a numerical check.

    `check=None` checks when the layout changes (another key map) or the dtype does.
    """
    spec = formats.get(to)
    if not spec.writable:
        raise ConversionError(f"cannot write {to}: it is read-only; write one of "
                              f"{', '.join(formats.WRITABLE)}")
    target_dtype(dtype)
    started = time.perf_counter()
    if not isinstance(source, Source):
        source = resolve(str(source), "checkpoint", from_format=from_format, vocab=vocab)
    canonical = load_canonical(source, config=config)
    from bertvault import provenance

    describing = None
    try:
        describing = provenance.start_describe(*provenance.located(source, canonical.source))
        out = _output_for(canonical, to, out, force)
        changes_layout = formats.get(canonical.format).keymap != spec.keymap or dtype != "keep"
        finishing = _Finishing(canonical, to, dtype, changes_layout if check is None else check, describing)
        count, size, left_out = save_canonical(canonical, out, to, dtype=dtype, force=force,
                                               drop_heads=drop_heads, max_shard_size=max_shard_size,
                                               finish=finishing)
        if not out.is_dir():
            finishing.record_beside(out)
    except BaseException:
        if describing is not None:
            describing.cancel()
        raise
    finally:
        canonical.close()
    return ConvertResult(out, canonical.format, to, count, size, dict(canonical.report.dropped),
                         canonical.report.heads, left_out, time.perf_counter() - started, finishing.result)


def _record(output: Path, canonical: Canonical, to: str, check, described: dict, dtype: str) -> None:
    """The provenance record of the output: the source's files and hashes, and the check."""
    from bertvault import provenance

    provenance.write_record(
        output, "convert", sources=[described],
        from_format=canonical.format, to=to, dtype=dtype,
        dropped=dict(canonical.report.dropped), heads=canonical.report.heads,
        check=None if check is None else {"max_abs_diff": check.max_diff, "diffs": check.diffs,
                                          "bounds": check.bound, "tf1_graph_float64": check.oracle},
    )

"""`bertvault pull`: choose an artifact's files, say how much is to fetch, fetch the missing ones
(several at once), build the view (holding archives to their published member hashes), record what
was pulled, and optionally copy the view elsewhere (`--to`: a copy of the user's own, never sharing
bytes with the cache, in a folder checked before anything is fetched)."""

from __future__ import annotations

import concurrent.futures as cf
import dataclasses
import fnmatch
import logging
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from bertvault import paths
from bertvault.cache import layout, metadata, store, view
from bertvault.cache import partial as partials
from bertvault.errors import (
    BertvaultError,
    ChecksumMismatch,
    DownloadError,
    UsageError,
    raise_if,
)
from bertvault.fetch import assemble
from bertvault.fetch.fetcher import FileFetcher, FileResult, cached, quarantine
from bertvault.fetch.members import PARTLY, MemberMismatch
from bertvault.fetch.options import PullOptions
from bertvault.fetch.progress import NullReporter, Reporter
from bertvault.fetch.remote import DiskFull, disk_full_is_an_error
from bertvault.fetch.retry import Stop
from bertvault.fetch.task import Task
from bertvault.fetch.transports import is_network
from bertvault.io.space import DISK_FULL
from bertvault.registry.schema import Artifact, FileSpec, total_size
from bertvault.sizes import format_size

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Plan:
    """What a pull is about to fetch, said before it starts."""

    artifact: str
    files: int              # chosen for this pull
    to_fetch: int           # of those, not in the cache yet
    size: int | None        # bytes to fetch: exact, or about; None when a size is published nowhere
    exact: bool

    def describe(self) -> str:
        if not self.to_fetch:
            return f"{self.artifact}: all {self.files} files are in the cache"
        amount = ("size not published" if self.size is None
                  else format_size(self.size) if self.exact else f"~{format_size(self.size)} (approximate)")
        return f"{self.artifact}: {self.to_fetch} of {self.files} files to fetch, {amount}"


@dataclass
class PullReport:
    artifact: str
    view: Path
    results: list[FileResult]
    complete: bool
    materialized: Path | None = None
    events: list[str] = field(default_factory=list)
    plan: Plan | None = None

    @property
    def failed(self) -> list[FileResult]:
        return [r for r in self.results if r.status == "failed"]

    @property
    def first_use(self) -> list[FileResult]:
        """Downloaded files that no published hash vouches for (their hash is now recorded)."""
        unvouched = ("first-use", "server", PARTLY)
        return [r for r in self.results if r.status == "downloaded" and r.trust in unvouched]

    def error(self) -> BertvaultError | None:
        if not self.failed:
            return None
        kind = ChecksumMismatch if any(r.mismatch for r in self.failed) else DownloadError
        return kind([r.error or f"{self.artifact}/{r.path}: failed" for r in self.failed])


def select(artifact: Artifact, include: tuple[str, ...]) -> list[FileSpec]:
    """Default: every non-optional file. With --include: the files matching any glob (by path or file
    name), optional ones too."""
    if not include:
        return [f for f in artifact.files if not f.optional]
    chosen = [f for f in artifact.files
              if any(fnmatch.fnmatchcase(f.path, g) or fnmatch.fnmatchcase(PurePosixPath(f.path).name, g)
                     for g in include)]
    if not chosen:
        sample = ", ".join(f.path for f in artifact.files[:8]) + (" ..." if len(artifact.files) > 8 else "")
        raise UsageError(f"--include {' '.join(include)} matches none of the files of {artifact.name} "
                         f"({sample})")
    return chosen


def _check_offline(artifact: Artifact, files: list[FileSpec], records: dict) -> None:
    missing = [f.path for f in files
               if not cached(f, records.get(f.path)) and all(is_network(u) for u in f.urls)]
    if missing:
        shown = ", ".join(missing[:5]) + (f" and {len(missing) - 5} more" if len(missing) > 5 else "")
        raise DownloadError(f"offline mode (--offline or BERTVAULT_OFFLINE=1): {artifact.name} is not in the "
                            f"cache (missing {shown}); pull it once with network access")


def _check_space(artifact: Artifact, files: list[FileSpec], records: dict) -> None:
    todo = [f for f in files if not cached(f, records.get(f.path))]
    need = sum(max(0, f.size - max(partials.present_bytes(u) for u in f.urls)) for f in todo if f.size)
    root = paths.home()
    root.mkdir(parents=True, exist_ok=True)
    free = shutil.disk_usage(root).free
    if need > free:
        raise DownloadError(f"not enough free space for {artifact.name}: {need} bytes needed, {free} free in "
                            f"{root}; free some space or set BERTVAULT_HOME to a larger disk")


def plan(artifact: Artifact, files: list[FileSpec], records: dict) -> Plan:
    todo = [f for f in files if not cached(f, records.get(f.path))]
    size, exact = total_size(todo) if todo else (0, True)
    return Plan(artifact.name, len(files), len(todo), size, exact)


def _fetch_all(fetcher: FileFetcher, files: list[FileSpec], tasks: dict[str, Task], jobs: int,
               stop: Stop) -> list[FileResult]:
    def one(spec: FileSpec) -> FileResult:
        task = tasks[spec.path]
        try:
            return fetcher.fetch(spec, task)
        except BertvaultError as exc:
            task.finish("failed")
            return FileResult(spec.path, "failed", spec.size, error=str(exc), fetched=task.fetched,
                              seconds=task.seconds, mismatch=isinstance(exc, ChecksumMismatch))
        except OSError as exc:
            task.finish("failed")
            return FileResult(spec.path, "failed", spec.size, error=f"{fetcher.artifact}/{spec.path}: {exc}",
                              fetched=task.fetched, seconds=task.seconds)

    with cf.ThreadPoolExecutor(max_workers=jobs, thread_name_prefix="file") as pool:
        futures = [pool.submit(one, spec) for spec in files]
        try:
            pending = set(futures)
            while pending:
                _, pending = cf.wait(pending, timeout=0.25)
        except KeyboardInterrupt:
            stop.set()  # every download gives its partial back and returns
            for future in futures:
                future.cancel()
            cf.wait(futures)
            raise
    return [f.result() for f in futures]


def check_target(to: Path) -> None:
    """`--to` must be a folder outside the cache that can be written, or created: said before any
    byte is fetched."""
    home = paths.home().resolve()
    resolved = to.resolve()
    if resolved == home or home in resolved.parents:
        raise UsageError(f"--to {to} is inside the cache ({home}); name a folder outside it")
    existing = to
    while not existing.exists() and existing.parent != existing:
        existing = existing.parent
    if not existing.is_dir():
        raise UsageError(f"--to {to}: {existing} is not a folder; name a folder (it is created if missing)")
    try:
        with tempfile.TemporaryFile(dir=existing):
            pass
    except OSError as exc:
        raise UsageError(f"--to {to}: cannot write in {existing} ({exc.strerror}); name a folder you can "
                         f"write") from None


def copy_to(report: PullReport, to: Path) -> None:
    """Copy the view into `to` (reflinks where the filesystem has them: see store.copy)."""
    try:
        to.mkdir(parents=True, exist_ok=True)
        view.materialize(report.view, to)
    except OSError as exc:
        where = f"the artifact is complete in the cache at {report.view}"
        if exc.errno in DISK_FULL:
            free = shutil.disk_usage(to).free
            raise DiskFull(f"no space left on the device holding {to} ({free} bytes free) while copying the "
                           f"artifact there; {where}: free some space and pull again") from None
        raise UsageError(f"--to {to}: cannot write {exc.filename or to} ({exc.strerror}); {where}") from None
    report.materialized = to


def _rebuild_view(artifact: Artifact, present: dict[str, dict], results: list[FileResult],
                  reporter: Reporter, ratio: float) -> dict[str, dict]:
    """Publish the view again where it no longer shows every present file exactly, saying why when
    it is a repair (not the arrival of new files); returns the archive records."""
    downloaded = {r.path for r in results if r.status == "downloaded"}
    reasons = [why for path, why in assemble.differences(artifact, present) if path not in downloaded]
    if not reasons and not downloaded:
        return {}
    if reasons and layout.artifact_dir(artifact.name).is_dir():
        reporter.event(f"{artifact.name}: rebuilding the view: {'; '.join(reasons)}")
    return _build_view(artifact, present, ratio, reporter)


def _finish_meta(artifact: Artifact, unpacked: dict[str, dict],
                 in_view: set[str]) -> tuple[bool, dict[str, str]]:
    """Record the view; return whether it is complete and the trust each archive earned from its
    members (kept as "pinned" when the manifest pins the archive itself)."""
    required = {f.path for f in artifact.files if not f.optional}
    complete = required <= in_view
    earned: dict[str, str] = {}

    def change(meta: dict) -> None:
        for path, archive in unpacked.items():
            record = meta["files"][path]
            record["archive"] = archive
            if archive.get("verified") and record.get("trust") != "pinned":
                record["trust"] = earned[path] = archive["verified"]
        meta.update(kind=artifact.kind, format=artifact.format, complete=complete, view=sorted(in_view))

    metadata.update(artifact.name, change)
    return complete, earned


def _reject_archive(artifact: Artifact, path: str, records: dict[str, dict], problems: list[str]) -> None:
    """An archive whose members contradict their published hashes is not the published archive: it
    goes to quarantine, and its record is forgotten so that the next pull fetches it afresh instead
    of holding the download to the hash of these bytes."""
    record = records.get(path) or {}
    sha = record.get("sha256")
    spec = next(f for f in artifact.files if f.path == path)
    if sha and store.has(sha):
        quarantine(layout.blob_path(sha), artifact.name, spec, record.get("url") or "", problems)

    def change(meta: dict) -> None:
        meta["files"].pop(path, None)
        meta["complete"] = False

    metadata.update(artifact.name, change)


def _build_view(artifact: Artifact, records: dict[str, dict], ratio: float,
                reporter: Reporter) -> dict[str, dict]:
    try:
        unpacked = assemble.build(artifact, records, ratio)
    except MemberMismatch as exc:
        _reject_archive(artifact, exc.path, records, exc.problems)
        raise
    for path, archive in unpacked.items():
        if archive.get("unlisted"):
            unlisted = archive["unlisted"]
            reporter.event(f"{artifact.name}/{path}: {len(unlisted)} extracted files have no published hash: "
                           f"{', '.join(unlisted[:5])}")
    return unpacked


def pull(name: str | Artifact, options: PullOptions, reporter: Reporter | None = None) -> PullReport:
    """Pull a registered artifact by name, or an Artifact built on the spot (see fetch.urls)."""
    raise_if(options.problems(), UsageError)
    if options.to is not None:
        check_target(options.to)
    reporter = reporter or NullReporter()
    if isinstance(name, Artifact):
        artifact = name
    else:
        from bertvault.registry import load_registry

        artifact = load_registry().get(name)
    files = select(artifact, options.include)
    if paths.offline() and not options.offline:
        options = dataclasses.replace(options, offline=True)
    records = metadata.read(artifact.name)["files"]
    if options.offline:
        _check_offline(artifact, files, records)
    _check_space(artifact, files, records)
    ahead = plan(artifact, files, records)
    log.info("%s", ahead.describe())
    reporter.note(ahead.describe())

    tasks = {f.path: Task(f.path, f.size) for f in files}
    stop = Stop()
    fetcher = FileFetcher(artifact.name, options, stop, reporter.event)
    reporter.start(artifact.name, list(tasks.values()))
    try:
        results = _fetch_all(fetcher, files, tasks, options.jobs, stop)
    finally:
        reporter.stop()

    with disk_full_is_an_error(paths.home(), artifact.name):
        records = metadata.read(artifact.name)["files"]
        failed = {r.path for r in results if r.status == "failed"}
        present = {f.path: records[f.path] for f in artifact.files
                   if f.path in records and f.path not in failed and store.has(records[f.path].get("sha256"))}
        unpacked: dict[str, dict] = {}
        if not present:
            view.remove(artifact.name)
        else:
            unpacked = _rebuild_view(artifact, present, results, reporter, options.max_extract_ratio)
        complete, earned = _finish_meta(artifact, unpacked, set(present))
    for result in results:
        result.trust = earned.get(result.path, result.trust)
    report = PullReport(artifact.name, layout.artifact_dir(artifact.name), results, complete, plan=ahead)
    if options.to is not None and not report.failed:
        copy_to(report, options.to)
    return report

"""Files of an artifact fetched shortly before a reader needs them, into a folder held under a bound.

The reader says in which order it will need the files: a plan of groups (the files of one window
of shards), each with a key that only grows, and, as it reads, which key it has reached
(`consumed`: every group before it is done with; the groups up to `needed` are wanted now). A
thread keeps the *target* present: the files of the first group not consumed and of the `ahead`
groups after it (or up to `needed`, if that is further), in that order, as many as fit in `bound`
bytes. It removes every file of the folder outside the target and fetches the missing ones, `jobs`
at a time, lowest group first.

The bound counts the files present and the downloads in flight, each reserved at its full size
before its first byte (the downloader preallocates it), so the folder and its partial downloads
together never hold more. Each file is fetched by the pull's downloader (ranged, resumable after a
kill, every digest the server states checked, a file that does not match quarantined) and takes
its name in the folder only once whole and verified. A file the cache already holds (part of the
same prefix was pulled) is linked from there instead.

A failure stops the prefetching: `wait_for` raises it in the reader's thread, and `on_failure`
hands it to readers elsewhere (data-loader workers).
"""

from __future__ import annotations

import concurrent.futures as cf
import logging
import os
import threading
from collections import deque
from collections.abc import Callable, Hashable, Iterable, Iterator
from pathlib import Path

from bertvault.cache import layout, store
from bertvault.errors import BertvaultError, DownloadError
from bertvault.fetch.fetcher import FileFetcher, FileResult, trust_of
from bertvault.fetch.options import PullOptions
from bertvault.fetch.retry import Stop
from bertvault.fetch.task import Task
from bertvault.registry.schema import Artifact, FileSpec

log = logging.getLogger(__name__)

Group = tuple[Hashable, list[str]]  # (key, paths in the artifact)


class _IntoFolder(FileFetcher):
    """The pull's fetcher, installing each verified file into a folder instead of the blob store."""

    def __init__(self, artifact: str, options: PullOptions, stop: Stop, event: Callable[[str], None],
                 folder: Path) -> None:
        super().__init__(artifact, options, stop, event)
        self.folder = folder

    def fetch(self, spec: FileSpec, task: Task) -> FileResult:
        result = super().fetch(spec, task)
        if result.status == "cached":  # verified bytes the cache holds already: shared, not copied
            store.place(layout.blob_path(result.sha256), self.folder / spec.path)
        return result

    def _install(self, spec: FileSpec, part, fetched, claims, task: Task) -> FileResult:
        target = self.folder / spec.path
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(part.data, target)  # the transfer synced the bytes; the name appears with all of them
        except BaseException:
            part.give_back()  # whole and verified: the next run installs it without fetching a byte
            raise
        os.chmod(target, 0o444)
        part.discard()
        task.finish("done")
        return FileResult(spec.path, "downloaded", fetched.size, fetched.hashes["sha256"], fetched.remote.url,
                          fetched=task.fetched, resumed=task.resumed, seconds=task.seconds,
                          trust=trust_of(claims))


def _as_error(path: str, exc: BaseException) -> BaseException:
    if isinstance(exc, OSError):
        return DownloadError(f"{path}: {exc.strerror or exc}")
    return exc


class Prefetch:
    def __init__(self, artifact: Artifact, folder: Path, bound: int, *, jobs: int = 4, ahead: int = 2,
                 options: PullOptions | None = None,
                 on_failure: Callable[[BertvaultError], None] | None = None) -> None:
        self.specs = {f.path: f for f in artifact.files}
        self.folder, self.bound, self.jobs, self.ahead = folder, bound, jobs, ahead
        self.on_failure = on_failure
        self._stop = Stop()
        self._fetcher = _IntoFolder(artifact.name, options or PullOptions(jobs=jobs), self._stop,
                                    lambda text: log.info("%s", text), folder)
        self._cond = threading.Condition()
        self._pinned: dict[str, int] = {}  # fetched by fetch_now: kept until the end
        self._present: dict[str, int] = {}
        self._inflight: dict[str, int] = {}
        self._plan: Iterator[Group] = iter(())
        self._groups: deque[Group] = deque()
        self._consumed: Hashable | None = None
        self._needed: Hashable | None = None
        self._error: BaseException | None = None
        self._thread: threading.Thread | None = None
        self._pool = cf.ThreadPoolExecutor(jobs, thread_name_prefix="stream-fetch")
        self.fetched: list[str] = []  # every file fetched (or linked from the cache), in order
        self.peak = 0  # the most bytes ever present or in flight at once

    def size(self, path: str) -> int:
        return self.specs[path].size or 0

    def fetch_now(self, paths: Iterable[str], *, fresh: bool = False) -> None:
        """Fetch these files here, now (a header, a vocab), and keep them until the end. A file already
        in the folder with the listed size is kept unless `fresh`."""
        for path in paths:
            target = self.folder / path
            if fresh or not target.is_file() or target.stat().st_size != self.size(path):
                self._fetcher.fetch(self.specs[path], Task(path, self.specs[path].size))  # replaces it
            with self._cond:
                self._pinned[path] = self.size(path)

    def clear(self) -> None:
        """Remove every file but the pinned ones (the folder holds shards of another version of the data)."""
        for path in sorted(self.folder.rglob("*"), reverse=True):
            relative = path.relative_to(self.folder).as_posix()
            if relative not in self._pinned and (path.is_file() or path.is_symlink()):
                path.unlink(missing_ok=True)

    def follow(self, plan: Iterable[Group]) -> None:
        """The reader continues with these groups, in this order (it may be endless)."""
        with self._cond:
            self._plan, self._groups, self._consumed, self._needed = iter(plan), deque(), None, None
            if self._thread is None:
                self._adopt()
                self._thread = threading.Thread(target=self._run, name="stream-prefetch", daemon=True)
                self._thread.start()
            self._cond.notify_all()

    def consumed(self, key: Hashable, needed: Hashable | None = None) -> None:
        """Every group before `key` is read (its files may go); the reader needs the groups up to
        `needed` now (even beyond `ahead`)."""
        with self._cond:
            self._consumed, self._needed = key, needed
            self._cond.notify_all()

    def wait_for(self, paths: Iterable[str], cancelled: Callable[[], bool] = lambda: False) -> bool:
        """Block until these files are in the folder (True), or `cancelled()` turns true (False); raises
        the prefetcher's failure if there is one."""
        wanted = list(paths)
        with self._cond:
            while True:
                if self._error is not None:
                    raise self._error
                if all(p in self._present or p in self._pinned for p in wanted):
                    return True
                if cancelled():
                    return False
                self._cond.wait(0.1)

    def close(self) -> None:
        """Stop fetching; downloads in flight keep their bytes for the next run."""
        self._stop.set()
        with self._cond:
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join()
        self._pool.shutdown(wait=True, cancel_futures=True)

    # --- the prefetching thread -------------------------------------------------------------------

    def _adopt(self) -> None:
        """Files an earlier run (killed, or stopped) left here whole: present, if they are still listed."""
        for path in self.folder.rglob("*"):
            relative = path.relative_to(self.folder).as_posix()
            if relative in self._pinned or not path.is_file():
                continue
            if relative in self.specs and path.stat().st_size == self.size(relative):
                self._present[relative] = self.size(relative)
            else:
                path.unlink(missing_ok=True)

    def _run(self) -> None:
        try:
            with self._cond:
                while not self._stop.is_set():
                    if self._error is None:
                        self._step()
                    self._cond.wait(1.0)
        except BaseException as exc:  # noqa: BLE001 - handed to the reader
            self._fail(exc)

    def _target(self) -> list[str]:
        while self._groups and self._consumed is not None and self._groups[0][0] < self._consumed:
            self._groups.popleft()
        while self._short() and (group := next(self._plan, None)) is not None:
            if self._consumed is None or not group[0] < self._consumed:
                self._groups.append(group)
        total, chosen = sum(self._pinned.values()), {}
        for _, paths in self._groups:
            for path in paths:
                if path in chosen:
                    continue
                if total + self.size(path) > self.bound:
                    return list(chosen)
                chosen[path] = None
                total += self.size(path)
        return list(chosen)

    def _short(self) -> bool:
        """True while the groups in view are fewer than the target wants."""
        if len(self._groups) < 1 + self.ahead:
            return True
        return self._needed is not None and self._groups[-1][0] < self._needed

    def _step(self) -> None:
        target = self._target()
        keep = set(target)
        for path in [p for p in self._present if p not in keep]:
            (self.folder / path).unlink(missing_ok=True)
            del self._present[path]
        used = sum(self._pinned.values()) + sum(self._present.values()) + sum(self._inflight.values())
        for path in target:
            if len(self._inflight) >= self.jobs:
                break
            if path in self._present or path in self._inflight:
                continue
            if used + self.size(path) > self.bound:
                break
            self._inflight[path] = self.size(path)
            used += self.size(path)
            self._pool.submit(self._fetch_one, path)
        self.peak = max(self.peak, used)

    def _fetch_one(self, path: str) -> None:
        spec = self.specs[path]
        try:
            self._fetcher.fetch(spec, Task(path, spec.size))
        except BaseException as exc:  # noqa: BLE001 - handed to the reader (a stop's Interrupted is not news)
            with self._cond:
                self._inflight.pop(path, None)
                self._cond.notify_all()
            if not self._stop.is_set():
                self._fail(_as_error(path, exc))
            return
        with self._cond:
            self._inflight.pop(path, None)
            self._present[path] = self.size(path)
            self.fetched.append(path)
            self._cond.notify_all()

    def _fail(self, exc: BaseException) -> None:
        with self._cond:
            if self._error is None:
                self._error = exc
                if isinstance(exc, BertvaultError) and self.on_failure is not None:
                    self.on_failure(exc)
            self._cond.notify_all()

"""The download engine: one remote file into one claimed partial folder.

A probe says what the remote is; the journal says what of it is already on disk; a Transfer fetches
the rest. When the remote turns out not to be what the probe said (changed, range ignored, URL
expired) it is probed again, and the bytes on disk are kept only if the validators still match, so
two versions of a file are never spliced. A file seen to change starts over once; a second change
fails the mirror (it is being replaced right now). A probe's size of 0 is not believed until the
GET confirms it, and a size that contradicts the manifest fails the mirror before any GET.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from dataclasses import dataclass

from bertvault.cache.journal import Journal
from bertvault.cache.partial import Partial
from bertvault.fetch import cancel
from bertvault.fetch import journal as journals
from bertvault.fetch.options import PullOptions
from bertvault.fetch.remote import (
    Interrupted,
    Mismatch,
    Remote,
    Reprobe,
    Retryable,
    Unavailable,
    disk_full,
    ensure_free,
)
from bertvault.fetch.retry import Budget, GiveUp, Stop
from bertvault.fetch.task import Task
from bertvault.fetch.transfer import Transfer
from bertvault.fetch.transports import Transport
from bertvault.io.ranges import RangeSet
from bertvault.io.space import DISK_FULL, fdatasync, open_direct, preallocate

log = logging.getLogger(__name__)

__all__ = ["Download", "Fetched", "Interrupted"]

CHANGES = 1  # a file seen to change mid-download is started over this many times, then its mirror fails


@dataclass
class Fetched:
    remote: Remote
    hashes: dict[str, str]
    size: int
    fetched: int   # bytes received by this run (the rest was resumed)


class Download:
    def __init__(self, transport: Transport, url: str, partial: Partial, algos: set[str],
                 options: PullOptions, task: Task, stop: Stop, event: Callable[[str], None],
                 size: int | None = None) -> None:
        self.transport, self.url, self.partial = transport, url, partial
        self.algos = {"sha256", *algos}
        self.options, self.task, self.stop, self.event = options, task, stop, event
        self.size = size  # what the manifest says, if it says

    def run(self) -> Fetched:
        session = self.transport.session()
        budget = Budget(self.options, self.url)
        remote = self._probe(session, budget)
        single, changes = False, 0
        for _ in range(self.options.rounds):
            if single:
                remote.ranges = False
            try:
                return self._transfer(remote, budget)
            except Reprobe as exc:
                self.event(f"{self.task.label}: {exc}; asking the server again")
                previous = remote
                remote = self._probe(session, budget)
                change = journals.changed(journals.validators(previous), remote)
                if exc.changed or change:
                    changes += 1
                    if changes > CHANGES:
                        how = exc if exc.changed else change
                        raise Unavailable(f"the file changed again during the download ({how}); it is being "
                                          f"replaced right now: pull again later") from None
                # A 200 to a range request from an unchanged file: this server ignores ranges.
                single = single or (exc.no_ranges and not change)
        raise Unavailable(f"the file kept changing or ignoring requests after {self.options.rounds} tries")

    def _backoff(self, budget: Budget, exc: Retryable, what: str) -> None:
        try:
            wait = budget.wait_after(exc)
        except GiveUp as give_up:
            raise Unavailable(str(give_up)) from None
        self.event(f"{self.task.label}: {exc}; {what} in {wait:.1f} s")
        if self.stop.sleep(wait):
            raise Interrupted("stopped")

    def _probe(self, session: object, budget: Budget) -> Remote:
        self.task.state = "probing"
        while True:
            if self.stop.is_set():
                raise Interrupted("stopped")
            try:
                remote = cancel.call(lambda: self.transport.probe(self.url, session), self.stop.is_set,
                                     what="probe")
            except Retryable as exc:
                self._backoff(budget, exc, "retrying")
                continue
            budget.progressed()
            return self._believed(remote)

    def _believed(self, remote: Remote) -> Remote:
        if remote.size == 0:  # an empty file must be seen empty by the GET, not installed on a HEAD's word
            remote.size, remote.ranges = None, False
        if self.size is not None and remote.size is not None and remote.size != self.size:
            raise Mismatch(f"size expected {self.size} (manifest), the server says {remote.size}; "
                           f"not downloaded")
        return remote

    def _transfer(self, remote: Remote, budget: Budget) -> Fetched:
        while True:
            try:
                return self._attempt(remote)
            except Retryable as exc:  # single stream: nothing can be resumed, start the file again
                self._backoff(budget, exc, "starting this file again")

    def _resume_point(self, remote: Remote, journal: Journal) -> RangeSet:
        if not remote.ranges or remote.size is None or not self.partial.data.exists():
            return RangeSet()
        loaded = journal.load()
        if loaded is None:
            return RangeSet()
        header, done = loaded
        reason = journals.resumable(header, remote)
        if reason:
            if done.total():
                self.event(f"{self.task.label}: starting over, {reason}")
            return RangeSet()
        return done

    def _attempt(self, remote: Remote) -> Fetched:
        journal = Journal(self.partial.journal)
        done = self._resume_point(remote, journal)
        fd = os.open(self.partial.data, os.O_RDWR | os.O_CREAT, 0o644)
        direct_fd = None
        try:
            if not done.total():
                os.ftruncate(fd, 0)
            elif self.options.fsync:
                fdatasync(fd)  # what the last run wrote is now synced, whatever the journal said
            self._preallocate(fd, remote.size)
            direct_fd = open_direct(self.partial.data) if self.options.direct_io else None
            journal.start(journals.validators(remote), done, synced=self.options.fsync)
            if done.total():
                self.event(f"{self.task.label}: resuming, {done.total()} of {remote.size} bytes already here")
            self.task.begin(remote.url, remote.size, done.total())
            transfer = Transfer(self.transport, remote, fd, self.partial.dir, journal, self.options,
                                self.task, self.stop, self.event, direct_fd)
            hashes, size = transfer.run(done, self.algos)
            return Fetched(remote, hashes, size, self.task.fetched)
        except OSError as exc:
            if exc.errno in DISK_FULL:
                resumable = remote.ranges and remote.size is not None
                raise disk_full(self.partial.dir, resumable=resumable) from None
            raise
        finally:
            journal.close()
            os.close(fd)
            if direct_fd is not None:
                os.close(direct_fd)

    def _preallocate(self, fd: int, size: int | None) -> None:
        if not size:
            return
        need = max(0, size - os.fstat(fd).st_blocks * 512)
        ensure_free(self.partial.dir.parent, need)
        try:
            preallocate(fd, size)
        except OSError:
            raise disk_full(self.partial.dir, need) from None

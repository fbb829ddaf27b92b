"""One file of an artifact: from the cache if its bytes are known and present, else from its mirrors
in order, verified against every digest anyone states, then installed into the blob store."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from bertvault.cache import layout, metadata, store
from bertvault.cache import partial as partials
from bertvault.cache.locks import waiting_lock
from bertvault.cache.partial import Partial
from bertvault.errors import BertvaultError, ChecksumMismatch, DownloadError
from bertvault.fetch import hfcache
from bertvault.fetch.digests import Claim, can_compute, check
from bertvault.fetch.downloader import Download, Fetched
from bertvault.fetch.options import PullOptions
from bertvault.fetch.remote import Mismatch, Remote, Unavailable, disk_full_is_an_error
from bertvault.fetch.retry import Stop
from bertvault.fetch.task import Task
from bertvault.fetch.transports import for_url, is_network, scheme
from bertvault.io import space
from bertvault.io.hashing import hash_file
from bertvault.io.owners import new_tag
from bertvault.registry.schema import FileSpec

log = logging.getLogger(__name__)

HASH_FIELDS = ("sha256", "md5", "crc32c")


@dataclass
class FileResult:
    path: str
    status: str                  # downloaded | cached | failed
    size: int | None = None
    sha256: str | None = None
    url: str | None = None
    fetched: int = 0             # bytes received by this run
    resumed: int = 0             # bytes found from an earlier, interrupted run
    seconds: float = 0.0
    trust: str = ""              # pinned | recorded | server | first-use; archives: published (members) too
    error: str | None = None
    mismatch: bool = False
    checked: list[str] = field(default_factory=list)


def claims_for(spec: FileSpec, record: dict | None) -> list[Claim]:
    """What the manifest pins, and the hash recorded at first use when the manifest pins none."""
    claims = [Claim(algo, getattr(spec, algo), "manifest") for algo in HASH_FIELDS if getattr(spec, algo)]
    if spec.size is not None:
        claims.append(Claim("size", str(spec.size), "manifest"))
    if record and record.get("sha256") and not spec.sha256:
        when = record.get("fetched", "?")
        claims.append(Claim("sha256", record["sha256"], f"recorded at first use, {when}"))
    return claims


def cached(spec: FileSpec, record: dict | None) -> str | None:
    """The sha256 of a present blob that satisfies every claim, if any."""
    sha = spec.sha256 or (record or {}).get("sha256")
    if not sha or not store.has(sha):
        return None
    known = {**(record or {}).get("hashes", {}), "sha256": sha}
    if (record or {}).get("sha256") == sha:
        known["size"] = str(record.get("size"))
    else:
        known["size"] = str(layout.blob_path(sha).stat().st_size)
    return None if check(claims_for(spec, record), known) else sha


def trust_of(claims: list[Claim]) -> str:
    sources = {c.source.split(",")[0] for c in claims if c.algo != "size"}
    if "manifest" in sources:
        return "pinned"
    if any(s.startswith("recorded") for s in sources):
        return "recorded"
    return "server" if sources else "first-use"


def quarantine(data: os.PathLike, artifact: str, spec: FileSpec, url: str, problems: list[str]) -> str:
    folder = layout.quarantine_dir() / artifact
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / f"{os.path.basename(spec.path)}.{time.strftime('%Y%m%dT%H%M%S')}.{new_tag()}"
    os.replace(data, target)
    why = f"{url}\n" + "\n".join(problems) + "\n"
    target.with_name(target.name + ".why").write_text(why, encoding="utf-8")
    return str(target)


def record_of(fetched: Fetched, claims: list[Claim], trust: str) -> dict:
    remote = fetched.remote
    return {
        "sha256": fetched.hashes["sha256"], "size": fetched.size, "url": remote.url, "etag": remote.etag,
        "last_modified": remote.last_modified, "version": remote.version, "info": remote.info,
        "hashes": fetched.hashes, "server_digests": {a: v for a, (v, _) in remote.digests.items()},
        "checked": sorted({c.describe() for c in claims}), "trust": trust, "fetched": metadata.now(),
    }


class FileFetcher:
    """Fetches the files of one artifact; shared by the pull's worker threads."""

    def __init__(self, artifact: str, options: PullOptions, stop: Stop, event: Callable[[str], None]) -> None:
        self.artifact, self.options, self.stop, self.event = artifact, options, stop, event

    def fetch(self, spec: FileSpec, task: Task) -> FileResult:
        """The file from the cache or a mirror; a full disk anywhere on the way (the lock, the partial
        folder, the record, the blob) is one DiskFull that keeps what was fetched."""
        label = f"{self.artifact}/{spec.path}"
        with disk_full_is_an_error(layout.partial_dir().parent, label):
            return self._fetch(spec, task, label)

    def _fetch(self, spec: FileSpec, task: Task, label: str) -> FileResult:
        task.state = "waiting"
        with waiting_lock(partials.key(spec.urls[0]), label, self.event, cancelled=self.stop.is_set):
            # Another process may have installed it while we waited: read the record now.
            record = metadata.read(self.artifact)["files"].get(spec.path)
            sha = cached(spec, record)
            if sha:
                task.total = task.done = layout.blob_path(sha).stat().st_size
                if (record or {}).get("sha256") != sha:  # a blob pinned here but fetched for another artifact
                    record = {"sha256": sha, "size": task.total, "hashes": {"sha256": sha}, "trust": "pinned",
                              "url": None, "fetched": metadata.now()}
                    metadata.record_file(self.artifact, spec.path, record)
                task.finish("cached")
                return FileResult(spec.path, "cached", task.total, sha, (record or {}).get("url"),
                                  trust=(record or {}).get("trust", ""))
            return self._from_mirrors(spec, task, claims_for(spec, record), label)

    def _from_mirrors(self, spec: FileSpec, task: Task, claims: list[Claim], label: str) -> FileResult:
        problems: list[str] = []
        mismatched = False
        for url in spec.urls:
            found = self._from_hf_cache(url, spec, task, claims, label) if scheme(url) == "hf" else None
            if found is not None:
                return found
            if self.options.offline and is_network(url):
                problems.append(f"{url}: not fetched, offline mode")
                continue
            part = Partial.claim(url)
            try:
                fetched = self._download(url, part, task, claims, label, spec.size)
            except Unavailable as exc:
                reason = str(exc).replace(f" for {url}", "")  # the URL is said once, first
                problems.append(f"{url}: {reason}")
                mismatched = mismatched or isinstance(exc, Mismatch)
                self._next_mirror(spec, url, f"{label}: {url} failed ({reason})")
                continue
            all_claims = claims + [Claim(a, v, f"server {h}") for a, (v, h) in fetched.remote.digests.items()
                                   if can_compute(a)]
            if fetched.remote.size is not None:
                all_claims.append(Claim("size", str(fetched.remote.size), "server"))
            wrong = check(all_claims, {**fetched.hashes, "size": str(fetched.size)})
            if wrong:
                where = quarantine(part.data, self.artifact, spec, url, wrong)
                part.discard()
                mismatched = True
                problems.append(f"{url}: " + "; ".join(wrong) + f" (quarantined as {where})")
                self._next_mirror(spec, url, f"{label}: {url} sent bytes that do not match: "
                                             f"{'; '.join(wrong)}")
                continue
            return self._install(spec, part, fetched, all_claims, task)
        error = ChecksumMismatch if mismatched else DownloadError
        raise error([f"{label}: {p}" for p in problems] or [f"{label}: no mirror to try"])

    def _next_mirror(self, spec: FileSpec, url: str, why: str) -> None:
        """Say why a mirror was left for the next one; the last mirror's failure is said once, by the
        error that the pull ends with."""
        if url != spec.urls[-1]:
            self.event(f"{why}; trying the next mirror")

    def _from_hf_cache(self, url: str, spec: FileSpec, task: Task, claims: list[Claim],
                       label: str) -> FileResult | None:
        """The file as a Hugging Face tool left it in its cache (no request), held to every claim and
        to the blob's own name; None when it is not there or does not match."""
        found = hfcache.lookup(url)
        if found is None:
            return None
        part = Partial.claim(url)
        try:
            store.copy(found, part.data)
            hashes = hash_file(part.data, {c.algo for c in claims if can_compute(c.algo)} | {"sha256"})
        except OSError as exc:
            part.discard()
            if space.is_full(exc):
                raise
            self.event(f"{label}: the Hugging Face cache's copy cannot be read ({exc.strerror}); "
                       "downloading it")
            return None
        size = part.data.stat().st_size
        named = hfcache.blob_sha256(found)
        remote = Remote(url=url, get_url=found.as_uri(), size=size, ranges=False,
                        digests={"sha256": (named, "Hugging Face cache")} if named else {},
                        info={"from": "Hugging Face cache", "blob": str(found)})
        all_claims = claims + [Claim(a, v, f"server {h}") for a, (v, h) in remote.digests.items()]
        wrong = check(all_claims, {**hashes, "size": str(size)})
        if wrong:
            part.discard()
            self.event(f"{label}: the Hugging Face cache's copy does not match ({'; '.join(wrong)}); "
                       "downloading it")
            return None
        task.begin(f"{url} (Hugging Face cache)", size, size)
        result = self._install(spec, part, Fetched(remote, hashes, size, 0), all_claims, task)
        result.url = f"{url} (from the Hugging Face cache)"
        return result

    def _download(self, url: str, part: Partial, task: Task, claims: list[Claim], label: str,
                  size: int | None) -> Fetched:
        """Fetch into the claimed partial folder; on any failure give it back for a later resume."""
        try:
            algos = {c.algo for c in claims if can_compute(c.algo)}
            return Download(for_url(url, self.options), url, part, algos, self.options, task, self.stop,
                            self.event, size).run()
        except BertvaultError as exc:  # a full disk: no other mirror would do better
            part.give_back()
            raise type(exc)([f"{label}: {p}" for p in exc.problems]) from None
        except BaseException:
            part.give_back()
            raise

    def _install(self, spec: FileSpec, part: Partial, fetched: Fetched, claims: list[Claim],
                 task: Task) -> FileResult:
        """Record the verified file, then move it into the store. The record comes first: where
        either step fails (a full disk), the partial download is given back whole, so the next pull
        installs it without fetching a byte, held to the hash recorded if the record was written."""
        task.state = "installing"
        trust = trust_of(claims)
        try:
            metadata.record_file(self.artifact, spec.path, record_of(fetched, claims, trust))
            store.install(part.data, fetched.hashes["sha256"], fsync=False)  # the transfer synced it
        except BaseException:
            part.give_back()
            raise
        part.discard()
        task.finish("done")
        return FileResult(spec.path, "downloaded", fetched.size, fetched.hashes["sha256"], fetched.remote.url,
                          fetched=task.fetched, resumed=task.resumed, seconds=task.seconds, trust=trust,
                          checked=sorted({c.describe() for c in claims}))

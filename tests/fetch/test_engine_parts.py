"""The engine's parts on their own: digest headers, byte-range sets, the journal, claiming partial
folders without locks, retry budgets."""

from __future__ import annotations

import base64
import hashlib
import os
import subprocess
import sys

import pytest

from bertvault.cache.journal import Journal, boot_id
from bertvault.cache.partial import Partial
from bertvault.fetch import journal as journals
from bertvault.fetch.digests import Claim, check, from_headers
from bertvault.fetch.options import PullOptions
from bertvault.fetch.remote import Remote, Retryable
from bertvault.fetch.retry import Budget, GiveUp
from bertvault.fetch.transfer import _Chunks
from bertvault.io.ranges import RangeSet, chunks
from bertvault.sizes import parse_size

DATA = b"The quick brown fox jumps over the lazy dog"
MD5 = hashlib.md5(DATA).hexdigest()
SHA = hashlib.sha256(DATA).hexdigest()
B64MD5 = base64.b64encode(hashlib.md5(DATA).digest()).decode()
B64SHA = base64.b64encode(hashlib.sha256(DATA).digest()).decode()


def test_every_server_digest_header_is_read() -> None:
    found = from_headers({
        "Content-MD5": B64MD5,
        "x-goog-hash": "crc32c=IgYRpw==, md5=" + B64MD5,
        "X-Linked-Etag": f'"{SHA}"',
        "Digest": f"SHA-256={B64SHA},UNIXsum=123",
    })
    assert found == {"md5": (MD5, "content-md5"), "crc32c": ("220611a7", "x-goog-hash"),
                     "sha256": (SHA, "x-linked-etag")}
    assert from_headers({"Repr-Digest": f"sha-256=:{B64SHA}:"}) == {"sha256": (SHA, "repr-digest")}
    assert from_headers({"x-ms-blob-content-md5": B64MD5}) == {"md5": (MD5, "x-ms-blob-content-md5")}


def test_range_scoped_and_malformed_digests_are_ignored() -> None:
    assert from_headers({"Content-MD5": B64MD5}, partial=True) == {}  # on a 206 it covers the range only
    # a git sha1 in X-Linked-Etag is not a sha256
    assert from_headers({"Content-MD5": "not base64!", "X-Linked-Etag": '"a1b2c3"'}) == {}


def test_check_names_expected_source_and_got() -> None:
    claims = [Claim("sha256", SHA, "manifest"), Claim("md5", "0" * 32, "server content-md5")]
    expected = [f"md5 expected {'0' * 32} (server content-md5), got {MD5}"]
    assert check(claims, {"sha256": SHA, "md5": MD5}) == expected


def test_range_set_merges_and_reports_gaps() -> None:
    done = RangeSet([(10, 20), (0, 5), (5, 10), (30, 40)])
    assert done.pairs() == [(0, 20), (30, 40)] and done.prefix() == 20 and done.total() == 30
    assert done.missing(50) == [(20, 30), (40, 50)]
    done.add(15, 35)
    assert done.pairs() == [(0, 40)]
    assert chunks([(0, 10), (20, 25)], 4) == [(0, 4), (4, 8), (8, 10), (20, 24), (24, 25)]
    assert RangeSet([(3, 9)]).prefix() == 0


def _remote(**kw) -> Remote:
    fields = {"url": "http://x/f", "get_url": "http://x/f", "size": 100, "ranges": True, "etag": '"e1"'}
    return Remote(**{**fields, **kw})


def test_journal_resumes_only_the_same_remote(tmp_path) -> None:
    journal = Journal(tmp_path / "journal")
    journal.start(journals.validators(_remote()))
    journal.commit(RangeSet([(0, 40)]), synced=True)
    journal.commit(RangeSet([(0, 60)]), synced=False)
    journal.close()
    with open(tmp_path / "journal", "a") as f:
        f.write('{"w": [[0, 9')  # torn by a crash
    header, done = Journal(tmp_path / "journal").load()
    assert done.pairs() == [(0, 60)]  # same boot: what was written counts
    assert journals.resumable(header, _remote()) is None
    assert "etag changed" in journals.resumable(header, _remote(etag='"e2"'))
    assert "size changed" in journals.resumable(header, _remote(size=101))
    assert "no ETag" in journals.resumable(header, _remote(etag=None))


def test_journal_after_a_reboot_trusts_only_synced_ranges(tmp_path) -> None:
    journal = Journal(tmp_path / "journal")
    journal.start(journals.validators(_remote()))
    journal.commit(RangeSet([(0, 40)]), synced=True)
    journal.commit(RangeSet([(0, 60)]), synced=False)
    journal.close()
    lines = (tmp_path / "journal").read_text().splitlines()
    lines[0] = lines[0].replace(boot_id() or "", "another-boot")
    (tmp_path / "journal").write_text("\n".join(lines) + "\n")
    assert Journal(tmp_path / "journal").load()[1].pairs() == [(0, 40)]


def test_partial_folders_are_claimed_by_rename_not_by_lock(home) -> None:
    first = Partial.claim("http://x/model.bin")
    second = Partial.claim("http://x/model.bin")  # first is alive and busy: a folder of its own
    assert first.dir != second.dir and not first.adopted and not second.adopted
    (first.data).write_bytes(b"half")
    Journal(first.journal).start(journals.validators(_remote(size=4)), RangeSet([(0, 4)]))
    first.give_back()
    second.give_back()  # holds no byte: nothing to resume, removed
    assert [p.name for p in (home / "partial").iterdir()] == [first.key]
    resumed = Partial.claim("http://x/model.bin")
    assert resumed.adopted and resumed.data.read_bytes() == b"half"
    assert not Partial.claim("http://x/model.bin").adopted  # only one process gets it


def test_a_dead_process_partial_is_adopted(home) -> None:
    code = ("from bertvault.cache.partial import Partial; p = Partial.claim('http://x/w.bin'); "
            "p.data.write_bytes(b'from the dead'); import os; os._exit(0)")
    subprocess.run([sys.executable, "-c", code], check=True, env=os.environ.copy())
    claimed = Partial.claim("http://x/w.bin")
    assert claimed.adopted and claimed.data.read_bytes() == b"from the dead"


def test_retry_budget_backs_off_honours_retry_after_and_resets_on_progress() -> None:
    budget = Budget(PullOptions(retries=2, retry_wait=0.5, max_retry_after=10), "http://x/f")
    assert budget.wait_after(Retryable("503")) == 0  # urllib3: the first retry is immediate
    assert 1.0 <= budget.wait_after(Retryable("503")) <= 1.5  # then 0.5 * 2, plus up to 0.5 of jitter
    with pytest.raises(GiveUp, match="3 attempts failed without progress; last: 503"):
        budget.wait_after(Retryable("503"))
    budget.progressed()
    assert budget.wait_after(Retryable("429", retry_after=7)) == 7
    with pytest.raises(GiveUp, match="retry after 60 s"):
        budget.wait_after(Retryable("429", retry_after=60))


def test_sizes_and_option_checks() -> None:
    assert parse_size("64K") == 65536 and parse_size("8M") == 8 << 20 and parse_size("1.5G") == 3 << 29
    assert PullOptions(connections=0, chunk_size=100).problems() == [
        "--connections must be between 1 and 64", "--chunk-size must be at least 4K"]
    assert PullOptions().chunk_for(1 << 30) == 16 << 20 and PullOptions().chunk_for(1 << 20) == 8 << 20


def test_an_idle_connection_takes_the_upper_half_of_the_busiest_piece() -> None:
    queue = _Chunks([(0, 100), (100, 140)], margin=10, min_split=8)
    first, second = queue.take(), queue.take()
    assert (first.cursor, first.end, second.cursor, second.end) == (0, 100, 100, 140)
    first.cursor = 20  # 80 bytes left on the first connection, 40 on the second
    stolen = queue.take()
    assert (stolen.cursor, stolen.end) == (60, 100) and first.end == 60 and first.requested_end == 100
    first.cursor, stolen.cursor = 55, 70  # 5 left on the first, 30 on the stolen half, 40 on the second
    later = queue.take()
    assert (later.cursor, later.end) == (120, 140) and second.end == 120
    queue.done(second), queue.done(later)
    stolen.cursor = 90
    assert queue.take() is None  # 5 bytes left on the first piece, 10 on the stolen: too few to split
    fresh = _Chunks([(0, 100), (100, 200)], margin=10, min_split=8)
    a, b = fresh.take(), fresh.take()
    assert (fresh.take().cursor, a.end, b.end) == (50, 50, 200)  # a tie goes to the piece taken first
    queue.give_back(first)  # a failed connection hands back only what it did not write
    retried = queue.take()
    assert (retried.cursor, retried.end) == (55, 60)

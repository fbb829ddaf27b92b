"""The cache after failures and against hostile names: a failed first pull leaves no record, `cache rm`
touches nothing but the artifact it names, `cache gc` removes every leftover, and a view that no
longer shows the cached bytes is rebuilt with the reason said."""

from __future__ import annotations

import json
import os
import time

import pytest
from fetch_helpers import random_bytes, sha256

FAST = ["--chunk-size", "64K", "--retry-wait", "0.01", "--retries", "0", "--progress", "none"]
DATA = random_bytes(100_000, seed=61)


def dead_tag() -> str:
    from bertvault.io.owners import HOST

    return f"{HOST}@999999999@abcd"


def error_line(stderr: str) -> str:
    assert "Traceback" not in stderr
    return stderr.strip().splitlines()[-1]


@pytest.fixture
def good(cli, faulty, manifest, home) -> str:
    manifest.add("good", {"path": "g.bin", "urls": [faulty.add("g.bin", DATA)]})
    assert cli("pull", "good", *FAST).exit_code == 0
    return "good"


@pytest.mark.timeout(60)
def test_a_failed_first_pull_leaves_no_record_and_verify_checks_the_rest(cli, faulty, manifest, home,
                                                                           good) -> None:
    manifest.add("broken", {"path": "b.bin", "urls": [f"http://127.0.0.1:{faulty.port}/missing.bin"]})
    assert cli("pull", "broken", *FAST).exit_code == 3
    assert not (home / "meta" / "broken.json").exists() and not (home / "artifacts" / "broken").exists()
    listed = json.loads(cli("cache", "ls", "--json").stdout)["artifacts"]
    assert [a["name"] for a in listed] == ["good"]
    verified = cli("verify", "--json")
    assert verified.exit_code == 0, verified.stderr
    assert [(c["artifact"], c["status"]) for c in json.loads(verified.stdout)] == [("good", "ok")]
    named = cli("verify", "broken")
    assert named.exit_code == 2 and "broken is not in the cache" in error_line(named.stderr)


@pytest.mark.timeout(60)
def test_empty_and_unreadable_records_of_older_runs_are_skipped_and_removed_by_gc(cli, home, good) -> None:
    meta = home / "meta"
    empty = {"name": "empty", "complete": False, "updated": None, "files": {}}  # as older versions left them
    (meta / "empty.json").write_text(json.dumps(empty))
    (meta / "torn.json").write_text('{"name": "torn", "files": {')
    assert cli("verify").exit_code == 0
    assert [a["name"] for a in json.loads(cli("cache", "ls", "--json").stdout)["artifacts"]] == ["good"]
    done = cli("cache", "gc")
    assert done.exit_code == 0 and "2 leftovers" in done.stdout
    assert sorted(p.name for p in meta.iterdir()) == ["good.json"]


@pytest.mark.timeout(60)
@pytest.mark.parametrize("name", [".", "..", "../meta", "../..", "good/../good", "a/b", "/tmp", "", ".hidden",
                                  "good\0"])
def test_cache_rm_refuses_anything_but_an_artifact_name(cli, home, good, name) -> None:
    before = sorted(str(p.relative_to(home)) for p in home.rglob("*") if "locks" not in p.parts)
    result = cli("cache", "rm", name)
    assert result.exit_code == 2
    assert "is not an artifact name" in error_line(result.stderr)
    after = sorted(str(p.relative_to(home)) for p in home.rglob("*") if "locks" not in p.parts)
    assert after == before
    assert (home / "artifacts" / "good" / "g.bin").read_bytes() == DATA


@pytest.mark.timeout(60)
def test_verify_refuses_a_path_for_a_name(cli, home, good) -> None:
    result = cli("verify", "../meta/good")
    assert result.exit_code == 2 and "is not an artifact name" in error_line(result.stderr)


@pytest.mark.timeout(60)
def test_gc_removes_every_leftover_of_dead_processes_and_keeps_what_is_used(cli, home, good) -> None:
    tag = dead_tag()
    leftovers = [
        home / "meta" / f".good.json.{tag}.tmp",                 # a record being written when killed
        home / "locks" / "x.bin-0123456789abcdef.999999999.tmp",  # a lock owner being written
        home / "partial" / f"x.bin-0123456789abcdef@{tag}",      # a claimed partial folder, empty
        home / "artifacts" / f".stage-good@{tag}",               # a view being staged
    ]
    for path in leftovers:
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.name.startswith((".stage-", "x.bin-0123456789abcdef@")):
            path.mkdir()
        else:
            path.write_text("{")
    old = time.time() - 3600
    os.utime(leftovers[1], (old, old))  # a lock owner is written in microseconds: an hour-old one is orphaned
    (home / "locks" / "x.bin-0123456789abcdef.owner").write_text(json.dumps(
        {"pid": 999999999, "host": tag.split("@")[0], "what": "x.bin"}))
    done = cli("cache", "gc")
    assert done.exit_code == 0, done.stderr
    assert [p for p in leftovers if p.exists()] == []
    assert sorted(p.name for p in (home / "locks").iterdir()) == []
    assert (home / "artifacts" / "good" / "g.bin").read_bytes() == DATA
    assert cli("verify", "good").exit_code == 0


@pytest.mark.timeout(60)
def test_a_view_that_no_longer_shows_the_cached_bytes_is_rebuilt_with_the_reason_said(cli, home,
                                                                                       good) -> None:
    entry = home / "artifacts" / "good" / "g.bin"
    entry.unlink()
    entry.write_bytes(b"replaced by hand")
    bad = cli("verify", "good")
    assert bad.exit_code == 4 and "the view's copy of g.bin has sha256" in error_line(bad.stderr)
    again = cli("pull", "good", *FAST)
    assert again.exit_code == 0
    assert "good: rebuilding the view: g.bin is not the cached file" in again.stderr
    assert entry.read_bytes() == DATA
    blob = home / "blobs" / "sha256" / sha256(DATA)[:2] / sha256(DATA)
    assert os.path.samestat(entry.stat(), blob.stat())

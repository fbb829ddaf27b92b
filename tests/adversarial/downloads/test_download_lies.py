"""Servers that lie about what they send: an object replaced between ranged requests (If-Range
ignored), lengths that do not match the bytes, bodies encoded though identity was asked for. Each
case ends with the right bytes or a one-line error; nothing spliced or truncated is ever recorded
as the file's first-use hash."""

from __future__ import annotations

import gzip
import hashlib
import json

import pytest
from fetch_helpers import random_bytes, sha256

FAST = ["--chunk-size", "64K", "--retry-wait", "0.01", "--progress", "none"]
DATA = random_bytes(512 * 1024, seed=21)  # 8 chunks of 64K
NEW = random_bytes(512 * 1024, seed=22)


def pull(cli, name: str, *args: str):
    result = cli("pull", name, *FAST, "--json", *args)
    report = json.loads(result.stdout) if result.exit_code == 0 else None
    return result.exit_code, report, result.stderr


def error_line(stderr: str) -> str:
    assert "Traceback" not in stderr
    return stderr.strip().splitlines()[-1]


def nothing_recorded(home, name: str) -> bool:
    """No view, no record (no first-use hash) and no blob."""
    blobs = [p for p in (home / "blobs").rglob("*") if p.is_file()] if (home / "blobs").exists() else []
    view, record = home / "artifacts" / name, home / "meta" / f"{name}.json"
    return not view.exists() and not record.exists() and not blobs


@pytest.mark.timeout(60)
@pytest.mark.parametrize("connections", ["1", "4"])
def test_an_object_replaced_between_ranged_requests_is_fetched_again_never_spliced(
        cli, faulty, manifest, home, connections) -> None:
    # The second GET finds the new version; the server ignores If-Range and answers 206 with the
    # new bytes and the new ETag, as some object stores do.
    url = faulty.add("f.bin", DATA, [None, "etag-change"], after=NEW, if_range=False)
    manifest.add("replaced", {"path": "f.bin", "urls": [url]})
    code, report, err = pull(cli, "replaced", "--connections", connections)
    assert code == 0, err
    assert (home / "artifacts" / "replaced" / "f.bin").read_bytes() == NEW
    assert report["files"][0]["sha256"] == sha256(NEW)
    assert "the file changed during the download (ETag" in err
    if connections == "1":  # the first 64K of the old version were written: they are dropped
        assert "starting over, etag changed" in err


@pytest.mark.timeout(60)
def test_an_object_that_keeps_changing_fails_and_records_nothing(cli, faulty, manifest, home) -> None:
    url = faulty.add("f.bin", DATA, [None, "etag-change", None, "etag-change"], after=NEW, if_range=False)
    manifest.add("unstable", {"path": "f.bin", "urls": [url]})
    code, _, err = pull(cli, "unstable", "--connections", "1")
    assert code == 3
    last = error_line(err)
    assert last.startswith(f"error: unstable/f.bin: {url}: ") and "changed again during the download" in last
    assert nothing_recorded(home, "unstable")


@pytest.mark.timeout(60)
def test_a_head_that_names_the_old_version_while_gets_send_the_new_is_refused(cli, faulty, manifest,
                                                                              home) -> None:
    old_etag = '"' + hashlib.md5(DATA).hexdigest()[:16] + '"'
    url = faulty.add("f.bin", NEW, if_range=False, head_headers={"ETag": old_etag})  # a stale cached HEAD
    manifest.add("stale", {"path": "f.bin", "urls": [url]})
    code, _, err = pull(cli, "stale", "--connections", "2")
    assert code == 3 and "changed again during the download" in error_line(err)
    assert "ETag" in error_line(err)
    assert nothing_recorded(home, "stale")


@pytest.mark.timeout(60)
def test_a_resumed_download_whose_object_changed_starts_over_though_if_range_is_ignored(
        cli, faulty, manifest, home) -> None:
    url = faulty.add("f.bin", DATA, ["drop:100000"] + ["404"] * 8, if_range=False)
    manifest.add("resumed", {"path": "f.bin", "urls": [url]})
    code, _, _ = pull(cli, "resumed", "--connections", "1", "--retries", "1")
    assert code == 3 and list((home / "partial").iterdir())  # 100000 bytes kept for a resume
    faulty.add("f.bin", NEW, if_range=False)  # replaced while nobody was looking
    code, report, err = pull(cli, "resumed", "--connections", "1")
    assert code == 0, err
    assert (home / "artifacts" / "resumed" / "f.bin").read_bytes() == NEW
    assert report["files"][0]["resumed"] == 0
    assert "starting over, etag changed" in err


@pytest.mark.timeout(60)
@pytest.mark.parametrize("data", [DATA, b""], ids=["not-empty", "really-empty"])
def test_a_head_that_says_zero_bytes_is_confirmed_by_the_get(cli, faulty, manifest, home, data) -> None:
    url = faulty.add("f.bin", data, head_headers={"Content-Length": "0"})
    manifest.add("zero", {"path": "f.bin", "urls": [url]})
    code, report, err = pull(cli, "zero")
    assert code == 0, err
    assert len(faulty.gets("f.bin")) >= 1  # never installed on the HEAD's word
    assert (home / "artifacts" / "zero" / "f.bin").read_bytes() == data
    assert report["files"][0]["sha256"] == sha256(data)


@pytest.mark.timeout(60)
def test_a_body_shorter_than_its_content_length_is_never_installed(cli, faulty, manifest, home) -> None:
    # No size in the HEAD answer, so the file comes in one stream whose Content-Length is the only
    # word on its size: a connection closed early must not pass for the end of the file.
    no_size = {"Content-Length": None, "Accept-Ranges": None}
    url = faulty.add("f.bin", DATA, ["drop:200000"], head_headers=no_size)
    manifest.add("short", {"path": "f.bin", "urls": [url]})
    code, report, err = pull(cli, "short")
    assert code == 0, err
    assert [s.sent for s in faulty.gets("f.bin")] == [200000, len(DATA)]
    assert (home / "artifacts" / "short" / "f.bin").read_bytes() == DATA
    assert report["files"][0]["sha256"] == sha256(DATA)


@pytest.mark.timeout(60)
def test_a_server_size_that_contradicts_the_manifest_is_refused_before_any_get(cli, faulty, manifest,
                                                                               home) -> None:
    url = faulty.add("f.bin", DATA)
    manifest.add("wrongsize", {"path": "f.bin", "urls": [url], "size": len(DATA) + 1})
    code, _, err = pull(cli, "wrongsize")
    assert code == 4
    last = error_line(err)
    assert f"size expected {len(DATA) + 1} (manifest), the server says {len(DATA)}" in last
    assert faulty.gets("f.bin") == []
    assert nothing_recorded(home, "wrongsize")


@pytest.mark.timeout(60)
def test_a_stream_that_ends_short_of_the_manifest_size_is_quarantined(cli, faulty, manifest, home) -> None:
    url = faulty.add("f.bin", DATA, head_headers={"Content-Length": None, "Accept-Ranges": None}, sized=False)
    manifest.add("lyingsize", {"path": "f.bin", "urls": [url], "size": len(DATA) + 4096})
    code, _, err = pull(cli, "lyingsize")
    assert code == 4 and f"size expected {len(DATA) + 4096} (manifest), got {len(DATA)}" in error_line(err)
    assert nothing_recorded(home, "lyingsize")


@pytest.mark.timeout(60)
def test_a_206_whose_content_length_contradicts_its_content_range_fails_that_mirror(
        cli, faulty, manifest, home) -> None:
    liar = faulty.add("liar/f.bin", DATA, ["overlong"] * 20)
    good = faulty.add("good/f.bin", DATA)
    manifest.add("overlong", {"path": "f.bin", "urls": [liar, good]})
    code, report, err = pull(cli, "overlong", "--connections", "1")
    assert code == 0, err
    assert report["files"][0]["url"] == good
    assert (home / "artifacts" / "overlong" / "f.bin").read_bytes() == DATA
    assert "Content-Length" in err and "Content-Range" in err
    assert len(faulty.gets("liar/f.bin")) == 1  # a lie is not retried


@pytest.mark.timeout(60)
def test_a_binary_gzipped_on_the_fly_is_refused_not_recorded(cli, faulty, manifest, home) -> None:
    url = faulty.add("model.bin", DATA, encode="gzip", ranges=False)
    manifest.add("gzipped", {"path": "model.bin", "urls": [url]})
    code, _, err = pull(cli, "gzipped")
    assert code == 3
    last = error_line(err)
    assert "Content-Encoding: gzip" in last and "identity" in last
    assert len(faulty.gets("model.bin")) == 1
    assert nothing_recorded(home, "gzipped")


@pytest.mark.timeout(60)
def test_a_gz_file_labelled_content_encoding_gzip_is_kept_as_it_is(cli, faulty, manifest, home) -> None:
    # Apache's AddEncoding x-gzip .gz: the stored .tar.gz is sent as it is, labelled as encoded.
    archive = gzip.compress(DATA)
    url = faulty.add("data.tar.gz", archive, headers={"Content-Encoding": "gzip"})
    manifest.add("labelled", {"path": "data.tar.gz", "urls": [url]})
    code, report, err = pull(cli, "labelled")
    assert code == 0, err
    assert (home / "artifacts" / "labelled" / "data.tar.gz").read_bytes() == archive
    assert report["files"][0]["sha256"] == sha256(archive)


@pytest.mark.timeout(60)
def test_a_gs_prefix_holding_objects_named_to_escape_its_folder_is_refused(gcs, home) -> None:
    from bertvault.errors import UnsafeInput
    from bertvault.fetch.urls import pull_url

    gcs.upload("hostile", "ckpt/vocab.txt", b"[PAD]\n")
    gcs.upload("hostile", "ckpt/../../../escaped.txt", b"evil")
    escaping = r"'ckpt/\.\./\.\./\.\./escaped\.txt'.*outside the download's folder"
    with pytest.raises(UnsafeInput, match=escaping):
        pull_url("gs://hostile/ckpt/")
    assert not list(home.rglob("escaped.txt")) and not list(home.parent.rglob("escaped.txt"))
    assert not (home / "artifacts").exists() or not list((home / "artifacts").iterdir())

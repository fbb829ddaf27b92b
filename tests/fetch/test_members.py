"""Published member hashes: the files inside an archive nobody pinned are held to them once it is
extracted (as NVIDIA's downloader checks Google's BERT zips), through a real pull from nginx."""

from __future__ import annotations

import io
import json
import zipfile

import pytest
from fetch_helpers import sha256

Q = ["--progress", "none"]
CONFIG = b'{"hidden_size": 64}\n'
WEIGHTS = bytes(range(256)) * 40
VOCAB = b"[PAD]\n[UNK]\nhello\n"


def zipped(files: dict[str, bytes], root: str = "tiny_L-2") -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in files.items():
            archive.writestr(f"{root}/{name}", data)
    return buffer.getvalue()


def archive_spec(url: str, members: dict[str, str], **more) -> dict:
    return {"path": "tiny.zip", "urls": [url], "archive": "zip", "archive_root": "tiny_L-2",
            "members": {path: {"sha256": digest} for path, digest in members.items()}, **more}


PUBLISHED = {"bert_config.json": sha256(CONFIG), "model.ckpt.data": sha256(WEIGHTS),
             "vocab.txt": sha256(VOCAB)}
ARCHIVE = zipped({"bert_config.json": CONFIG, "model.ckpt.data": WEIGHTS, "vocab.txt": VOCAB})


@pytest.mark.timeout(60)
def test_an_unpinned_archive_whose_members_match_is_verified(cli, nginx, manifest, home) -> None:
    manifest.add("tiny", archive_spec(nginx.put("tiny.zip", ARCHIVE), PUBLISHED, approx_size=9_000))
    result = cli("pull", "tiny", *Q, "--json")
    assert result.exit_code == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["plan"] == {"artifact": "tiny", "files": 1, "to_fetch": 1, "size": 9000, "exact": False}
    assert report["files"][0]["trust"] == "published (members)"
    assert (home / "artifacts" / "tiny" / "model.ckpt.data").read_bytes() == WEIGHTS
    record = json.loads((home / "meta" / "tiny.json").read_text())["files"]["tiny.zip"]
    assert record["trust"] == "published (members)"

    # Verified: no trust-on-first-use advice; verify holds the members to the same hashes.
    assert cli("cache", "rm", "tiny").exit_code == 0
    table = cli("pull", "tiny", *Q)
    assert table.exit_code == 0 and "first use:" not in table.stdout and "published (members)" in table.stdout
    assert cli("verify", "tiny").exit_code == 0


@pytest.mark.timeout(60)
def test_one_wrong_member_installs_nothing_and_a_corrected_manifest_pulls_again(cli, nginx, manifest,
                                                                               home) -> None:
    url = nginx.put("tiny.zip", ARCHIVE)
    wrong = {**PUBLISHED, "vocab.txt": sha256(b"another vocabulary\n")}
    manifest.add("tiny", archive_spec(url, wrong))
    result = cli("pull", "tiny", *Q)
    assert result.exit_code == 4
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and "Traceback" not in result.stderr  # one line
    assert (f"tiny/vocab.txt (from tiny.zip): sha256 expected {wrong['vocab.txt']} (published member hash), "
            f"got {PUBLISHED['vocab.txt']}") in result.stderr
    assert "model.ckpt.data" not in result.stderr  # the members that match are not named
    assert not (home / "artifacts" / "tiny").exists()  # nothing installed, no staging folder left
    assert not [p for p in (home / "artifacts").iterdir()]
    assert not (home / "blobs" / "sha256" / sha256(ARCHIVE)[:2] / sha256(ARCHIVE)).exists()  # quarantined
    assert list((home / "quarantine" / "tiny").glob("tiny.zip.*"))
    assert "tiny.zip" not in _recorded(home)

    # The archive's hash was not kept as a first-use record: once the manifest is right, it is fetched again.
    manifest.add("tiny", archive_spec(url, PUBLISHED))
    again = cli("pull", "tiny", *Q, "--json")
    assert again.exit_code == 0, again.stderr
    assert json.loads(again.stdout)["files"][0]["trust"] == "published (members)"
    assert (home / "artifacts" / "tiny" / "vocab.txt").read_bytes() == VOCAB


@pytest.mark.timeout(60)
def test_a_listed_member_missing_from_the_archive_is_a_mismatch(cli, nginx, manifest, home) -> None:
    members = {**PUBLISHED, "bert_model.ckpt.index": "ab" * 32}
    manifest.add("tiny", archive_spec(nginx.put("tiny.zip", ARCHIVE), members))
    result = cli("pull", "tiny", *Q)
    assert result.exit_code == 4
    assert ("tiny/bert_model.ckpt.index (from tiny.zip): listed with a published sha256 but not in the "
            "archive") in result.stderr
    assert not (home / "artifacts" / "tiny").exists()


@pytest.mark.timeout(60)
def test_files_no_hash_covers_leave_the_archive_partly_verified(cli, nginx, manifest, home) -> None:
    extra = zipped({"bert_config.json": CONFIG, "model.ckpt.data": WEIGHTS, "vocab.txt": VOCAB,
                    "checkpoint": b'model_checkpoint_path: "bert_model.ckpt"\n'})
    manifest.add("tiny", archive_spec(nginx.put("tiny.zip", extra), PUBLISHED))
    result = cli("pull", "tiny", *Q)
    assert result.exit_code == 0, result.stderr
    assert "tiny/tiny.zip: 1 extracted files have no published hash: checkpoint" in result.stderr
    assert "partly published (members)" in result.stdout
    assert f"first use: tiny.zip sha256 {sha256(extra)} recorded" in result.stdout


@pytest.mark.timeout(60)
def test_verify_holds_cached_archives_to_member_hashes_published_later(cli, nginx, manifest, home) -> None:
    url = nginx.put("tiny.zip", ARCHIVE)
    manifest.add("tiny", archive_spec(url, {}))  # nothing published yet: first use
    first = cli("pull", "tiny", *Q, "--json")
    assert json.loads(first.stdout)["files"][0]["trust"] == "first-use"

    # A manifest update now publishes member hashes, one of which these bytes contradict.
    manifest.add("tiny", archive_spec(url, {**PUBLISHED, "model.ckpt.data": sha256(b"the real weights")}))
    result = cli("verify", "tiny")
    assert result.exit_code == 4
    expected = sha256(b"the real weights")
    assert f"tiny/model.ckpt.data (from tiny.zip): sha256 expected {expected}" in result.stderr
    assert "moved to quarantine" in result.stderr
    assert "tiny.zip" not in _recorded(home)


@pytest.mark.timeout(60)
def test_an_approximate_size_is_shown_never_checked(cli, nginx, manifest) -> None:
    data = b"x" * 5000
    manifest.add("about", {"path": "a.bin", "urls": [nginx.put("a.bin", data)], "approx_size": 420_000_000})
    listed = next(r for r in json.loads(cli("list", "--json").stdout) if r["name"] == "about")
    assert (listed["size"], listed["size_is_exact"]) == (420_000_000, False)
    assert "~420.0 MB" in cli("info", "about").stdout
    # The total is said before the pull starts (with the progress lines; not with --progress none).
    result = cli("pull", "about", "--progress", "log")
    assert result.exit_code == 0
    assert result.stderr.splitlines()[0] == "bertvault: about: 1 of 1 files to fetch, ~420.0 MB (approximate)"
    assert "files to fetch" not in cli("cache", "rm", "about").stdout + cli("pull", "about", *Q).stderr
    assert "about: all 1 files are in the cache" in cli("pull", "about", "--progress", "log").stderr


def _recorded(home) -> dict:
    """The pull record's files (none when a first pull failed: it leaves no record at all)."""
    record = home / "meta" / "tiny.json"
    return json.loads(record.read_text())["files"] if record.exists() else {}

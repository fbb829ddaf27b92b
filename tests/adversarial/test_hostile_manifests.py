"""Hostile and broken manifests: every path, name and series that would crash a later `pull` (or make
every command slow) is refused by `manifest validate` and by every command that loads it, in one line
that names the file, the artifact and the field."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import pytest

from bertvault.registry.loader import Entry, read_manifest
from bertvault.registry.registry import Registry
from bertvault.registry.schema import Artifact

pytestmark = pytest.mark.timeout(60)

HEAD = '[[artifact]]\nname = "hostile"\nkind = "dataset"\nformat = "text"\n'


def files(*paths: str, **extra) -> str:
    tables = [f"[[artifact.files]]\npath = {json.dumps(p)}\nurls = [\"https://example.org/f\"]\n"
              + "".join(f"{k} = {json.dumps(v)}\n" for k, v in extra.items()) for p in paths]
    return HEAD + "".join(tables)


def series(path: str, last: int = 3) -> str:
    return HEAD + (f"[[artifact.shards]]\npath = {json.dumps(path)}\nfirst = 0\nlast = {last}\n"
                   'urls = ["https://example.org/part_{i}"]\n')


LONG = "n" * 300
BAD = {
    "dot": (files("."), r"files\.0\.path: file path '\.' has an empty or '\.' segment"),
    "empty": (files(""), r"files\.0\.path: file path '' is empty"),
    "dot segment": (files("a/./b"), r"files\.0\.path: .* has an empty or '\.' segment"),
    "empty segment": (files("a//b"), r"files\.0\.path: .* has an empty or '\.' segment"),
    "trailing slash": (files("a/"), r"files\.0\.path: .* has an empty or '\.' segment"),
    "dot-dot": (files("a/../../b"), r"files\.0\.path: .* climbs out of its folder with '\.\.'"),
    "absolute": (files("/etc/passwd"), r"files\.0\.path: .* is absolute"),
    "drive letter": (files("C:/x"), r"files\.0\.path: .* is absolute"),
    "backslash": (files("a\\b"), r"files\.0\.path: .* holds a backslash"),
    "NUL": (files("a\0b"), r"files\.0\.path: .* holds a NUL or another control character"),
    "control character": (files("a\x1bb"), r"files\.0\.path: .* holds a NUL or another control character"),
    "newline": (files("a\nb"), r"files\.0\.path: .* holds a NUL or another control character"),
    "300-character segment": (files(LONG), r"files\.0\.path: .* has a segment longer than 255 bytes"),
    "300 characters of UTF-8": (files("é" * 150), r"has a segment longer than 255 bytes"),
    "1100-character path": (files("/".join(["d" * 100] * 11)), r"files\.0\.path: .* is 1110 bytes long"),
    "archive_root with NUL": (files("a.zip", archive="zip", archive_root="x\0"),
                              r"files\.0\.archive_root: archive_root .* holds a NUL"),
    "archive_root climbing": (files("a.zip", archive="zip", archive_root="../x"),
                              r"files\.0\.archive_root: .* climbs out"),
    "series with ..": (series("../part_{i}"), r"shards\.0: .*shard path .* climbs out"),
    "series with an empty segment": (series("d//part_{i}"), r"shards\.0: .*shard path .* empty or '\.'"),
    "series too long once expanded": (series("p" * 252 + "_{i}", last=1000),
                                      r"shards\.0: .*shard path .* segment longer than 255 bytes"),
    "300-character name": (HEAD.replace('"hostile"', json.dumps(LONG)) + files("a")[len(HEAD):],
                           r"name: name 'nnnn.*is 300 characters long; at most 128"),
    "300-character alias": (HEAD + f"aliases = [{json.dumps(LONG)}]\n" + files("a")[len(HEAD):],
                            r"aliases: alias 'nnnn.*is 300 characters long; at most 128"),
    "file and folder of it": (files("a", "a/b"), r"file paths that are also folders of other paths: a "),
    "same path twice": (files("a", "a"), r"file paths listed twice: a"),
    "series over a file": (series("part_{i}") + files("part_2")[len(HEAD):], r"paths listed twice: part_2"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_manifest_is_one_line_naming_file_artifact_and_field(cli, tmp_path, monkeypatch, case) -> None:
    text, pattern = BAD[case]
    bad = tmp_path / "bad.toml"
    bad.write_text(text, encoding="utf-8")
    result = cli("manifest", "validate", bad)
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: {bad}: artifact "), lines
    assert re.search(pattern, lines[0]), lines[0]
    assert len(lines[0]) < 400  # a long path is shortened, not echoed whole
    # On the manifest path, the same file stops `pull` before anything is created: no crash, no traceback.
    monkeypatch.setenv("BERTVAULT_MANIFESTS", str(bad))
    pulled = cli("pull", "hostile", "--progress", "none")
    assert pulled.exit_code == 2 and "Traceback" not in pulled.output


def test_unusual_but_valid_paths_pull(cli, manifest, home, tmp_path) -> None:
    """The rules refuse what breaks, not what is merely unusual: spaces, UTF-8, dots inside names."""
    source = tmp_path / "v.txt"
    source.write_bytes(b"[PAD]\n")
    path = "données/v 1..x/vocab.txt"
    manifest.add("unusual", {"path": path, "urls": [source.as_uri()]})
    assert cli("pull", "unusual", "--progress", "none").exit_code == 0
    assert (home / "artifacts" / "unusual" / path).read_bytes() == b"[PAD]\n"


def test_forty_thousand_shards_load_in_well_under_two_seconds(tmp_path) -> None:
    manifest = tmp_path / "many.toml"
    manifest.write_text(series("wiki/part_{i}.bin", last=39_999))
    started = time.process_time()
    [entry] = read_manifest(manifest)
    elapsed = time.process_time() - started
    files = entry.artifact.files
    assert len(files) == 40_000 and files[-1].path == "wiki/part_39999.bin"
    assert files[123].urls == ["https://example.org/part_123"] and files[123].sha256 is None
    # CPU seconds, not wall-clock ones, so a busy machine does not fail it. Was 31 s (quadratic).
    assert elapsed < 2.0, f"{elapsed:.2f} s"


def test_a_duplicate_among_forty_thousand_is_found_quickly(tmp_path) -> None:
    manifest = tmp_path / "many.toml"
    manifest.write_text(series("part_{i}", last=39_999) + files("part_39999")[len(HEAD):])
    started = time.process_time()
    with pytest.raises(Exception, match="file paths listed twice: part_39999"):
        read_manifest(manifest)
    assert time.process_time() - started < 2.0


def test_same_weights_over_a_long_chain_is_linear() -> None:
    """Three thousand artifacts, each the same weights as the one before: all found, quickly."""
    count = 3000
    one = [{"path": "f", "urls": ["https://example.org/f"]}]
    entries = [Entry(Artifact(name=f"a{i}", kind="dataset", format="text", files=one,
                              same_weights_as=[f"a{i - 1}"] if i else []), Path("m.toml"), False)
               for i in range(count)]
    registry = Registry([], entries)
    started = time.process_time()
    same = registry.same_weights("a0")
    assert len(same) == count - 1 and "a2999" in same and "a0" not in same
    assert registry.same_weights("a1500") == sorted(f"a{i}" for i in range(count) if i != 1500)
    assert time.process_time() - started < 2.0

"""Extraction as a publisher's archive needs it: the root folder stripped, members hashed, links inside
kept, and archives pulled into the view, swapped in at once and reused. What a hostile or damaged
archive tries is tested in tests/adversarial/test_hostile_archives.py."""

from __future__ import annotations

import io
import json
import os
import stat
import tarfile
import zipfile
from pathlib import Path

import pytest
from fetch_helpers import sha256

from bertvault.errors import UnsafeInput
from bertvault.fetch.archives import extract


def make_zip(path: Path, members: dict[str, bytes], links: dict[str, str] | None = None) -> Path:
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as z:
        for name, data in members.items():
            z.writestr(name, data)
        for name, target in (links or {}).items():
            info = zipfile.ZipInfo(name)
            info.external_attr = (stat.S_IFLNK | 0o777) << 16
            z.writestr(info, target)
    return path


def make_tar(path: Path, members: list[tarfile.TarInfo], data: dict[str, bytes] | None = None) -> Path:
    with tarfile.open(path, "w:gz") as t:
        for info in members:
            body = (data or {}).get(info.name)
            if body is not None:
                info.size = len(body)
            t.addfile(info, io.BytesIO(body) if body is not None else None)
    return path


def tar_member(name: str, kind: bytes = tarfile.REGTYPE, link: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, link
    return info


def test_zip_root_is_stripped_and_members_hashed(tmp_path) -> None:
    archive = make_zip(tmp_path / "m.zip", {"uncased_L-2/vocab.txt": b"[PAD]\n",
                                            "uncased_L-2/sub/c.json": b"{}", "README": b"outside the root"})
    dest = tmp_path / "out"
    dest.mkdir()
    files = extract(archive, "zip", dest, "uncased_L-2", cap=1 << 20)
    assert files == {"vocab.txt": {"size": 6, "sha256": sha256(b"[PAD]\n")},
                     "sub/c.json": {"size": 2, "sha256": sha256(b"{}")}}
    assert sorted(str(p.relative_to(dest)) for p in dest.rglob("*")) == ["sub", "sub/c.json", "vocab.txt"]


def test_links_inside_the_archive_are_kept(tmp_path) -> None:
    archive = make_tar(tmp_path / "ok.tar.gz",
                       [tar_member("d/a.txt"), tar_member("d/b.txt", tarfile.SYMTYPE, "a.txt")],
                       {"d/a.txt": b"A"})
    dest = tmp_path / "out"
    dest.mkdir()
    extract(archive, "tar.gz", dest, "d", cap=1 << 20)
    assert os.readlink(dest / "b.txt") == "a.txt" and (dest / "b.txt").read_bytes() == b"A"


def test_a_missing_archive_root_is_reported(tmp_path) -> None:
    archive = make_zip(tmp_path / "m.zip", {"other/x": b"x"})
    (tmp_path / "out").mkdir()
    with pytest.raises(UnsafeInput, match="no files under 'bert_model'"):
        extract(archive, "zip", tmp_path / "out", "bert_model", cap=1 << 20)


def test_pulled_archive_lands_in_the_view_and_is_reused(cli, nginx, manifest, home, tmp_path) -> None:
    archive = make_zip(tmp_path / "uncased_L-2_H-128_A-2.zip", {
        "uncased_L-2_H-128_A-2/bert_config.json": b'{"hidden_size": 128}',
        "uncased_L-2_H-128_A-2/vocab.txt": b"[PAD]\n[UNK]\n",
        "uncased_L-2_H-128_A-2/bert_model.ckpt.index": b"index"})
    tarball = make_tar(tmp_path / "data.tar.gz", [tar_member("bert_data/512/shard.bin")],
                       {"bert_data/512/shard.bin": b"s" * 999})
    manifest.add("tiny-zip", {"path": "uncased_L-2_H-128_A-2.zip",
                              "urls": [nginx.put("a.zip", archive.read_bytes())],
                              "archive": "zip", "archive_root": "uncased_L-2_H-128_A-2"},
                 {"path": "data.tar.gz", "urls": [nginx.put("d.tgz", tarball.read_bytes())],
                  "archive": "tar.gz", "archive_root": "bert_data"})
    assert cli("pull", "tiny-zip", "--progress", "none").exit_code == 0
    view = home / "artifacts" / "tiny-zip"
    assert sorted(str(p.relative_to(view)) for p in view.rglob("*") if p.is_file()) == \
        ["512/shard.bin", "bert_config.json", "bert_model.ckpt.index", "vocab.txt"]
    assert (view / "vocab.txt").read_bytes() == b"[PAD]\n[UNK]\n"
    meta = json.loads((home / "meta" / "tiny-zip.json").read_text())
    members = meta["files"]["uncased_L-2_H-128_A-2.zip"]["archive"]["members"]
    assert meta["complete"] and members["vocab.txt"]["size"] == 12

    inode = (view / "vocab.txt").stat().st_ino
    (view / "512" / "shard.bin").unlink()  # damage the view: rebuilt on the next pull
    assert cli("pull", "tiny-zip", "--progress", "none").exit_code == 0
    assert (view / "512" / "shard.bin").read_bytes() == b"s" * 999
    assert (view / "vocab.txt").stat().st_ino == inode  # the zip was not extracted again
    assert not [p for p in (home / "artifacts").iterdir() if p.name.startswith(".")]

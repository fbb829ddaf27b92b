"""The TPU tutorial's bucket path against fake-gcs-server: push a TF1 checkpoint and TFRecords,
read them back by gs:// and check every byte; uploads resume after an interruption."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
import requests

from bertvault.errors import UploadError
from bertvault.push import gcs as gcs_push
from bertvault.sources import resolve


def sha256s(folder: Path) -> dict[str, str]:
    return {str(f.relative_to(folder)): hashlib.sha256(f.read_bytes()).hexdigest()
            for f in sorted(folder.rglob("*")) if f.is_file() and not f.name.startswith(".")}


def bucket(gcs, name: str) -> str:
    requests.post(f"{gcs.endpoint}/storage/v1/b", json={"name": name})
    return name


def test_tutorial_flow_checkpoint_and_tfrecords_through_a_bucket(gcs, cli, demo_checkpoint, sample_text,
                                                                  tmp_path):
    bucket(gcs, "tutorial")
    pushed = cli("push", "bert-demo-tiny", "gs://tutorial/bert/ckpt")
    assert pushed.returncode == 0, pushed.stderr
    assert "pushed 5 files" in pushed.stdout

    prepared = cli("prepare", str(sample_text), "--vocab-from", "bert-demo-tiny", "--format", "tfrecord",
                   "--seq-len", "64", "--dupe-factor", "2", "--out", "gs://tutorial/bert/data")
    assert prepared.returncode == 0, prepared.stderr
    assert "to gs://tutorial/bert/data" in prepared.stdout

    # Back by gs://: every checkpoint file identical, verified against the server's digests on the way.
    ckpt = resolve("gs://tutorial/bert/ckpt").path
    assert sha256s(ckpt) == sha256s(demo_checkpoint)

    # The checkpoint converts straight from the bucket, and the TFRecords feed `prepare` from it.
    converted = cli("convert", "gs://tutorial/bert/ckpt", "--to", "safetensors",
                    "--out", str(tmp_path / "st"))
    assert converted.returncode == 0, converted.stderr
    assert (tmp_path / "st" / "model.safetensors").is_file()
    data = resolve("gs://tutorial/bert/data").path
    records = sorted(p.name for p in data.rglob("*.tfrecord"))
    assert records, sorted(p.name for p in data.rglob("*"))
    reread = cli("prepare", "gs://tutorial/bert/data", "--vocab-from", "bert-demo-tiny",
                 "--out", str(tmp_path / "n"))
    assert reread.returncode == 0, reread.stderr
    assert "examples" in reread.stdout


def test_upload_resumes_where_the_server_stopped(gcs, tmp_path, monkeypatch):
    bucket(gcs, "resume")
    monkeypatch.setattr(gcs_push, "CHUNK", 256 << 10)
    data = bytes(range(256)) * (4 * 1024 * 3 + 17)  # ~3 MiB, not a multiple of the chunk
    source = tmp_path / "big.bin"
    source.write_bytes(data)

    sent: list[int] = []

    def crash_after_two_chunks(n: int) -> None:
        sent.append(n)
        if sum(sent) >= 2 * gcs_push.CHUNK:
            raise KeyboardInterrupt  # the process dies here; the session URI is in the journal

    with pytest.raises(KeyboardInterrupt):
        gcs_push.upload_file(source, "gs://resume/big.bin", on_bytes=crash_after_two_chunks)

    progress: list[int] = []
    meta = gcs_push.upload_file(source, "gs://resume/big.bin", on_bytes=progress.append)
    assert progress[0] == 2 * gcs_push.CHUNK, "the second run should start where the server stopped"
    assert sum(progress) == len(data)
    assert int(meta["size"]) == len(data)
    body = requests.get(f"{gcs.endpoint}/storage/v1/b/resume/o/big.bin", params={"alt": "media"}).content
    assert body == data
    from bertvault.cache import layout

    assert not list(layout.partial_dir().rglob("uploads/*.json")), "the journal is removed after success"


def test_identical_object_is_not_uploaded_again(gcs, tmp_path):
    bucket(gcs, "skip")
    source = tmp_path / "x.bin"
    source.write_bytes(b"same bytes" * 1000)
    first = gcs_push.upload_file(source, "gs://skip/x.bin")
    again = gcs_push.upload_file(source, "gs://skip/x.bin")
    assert again["generation"] == first["generation"]


def test_missing_bucket_is_one_clear_error(gcs, tmp_path, cli):
    source = tmp_path / "x.bin"
    source.write_bytes(b"x")
    with pytest.raises(UploadError, match="could not start an upload session"):
        gcs_push.upload_file(source, "gs://no-such-bucket/x.bin")
    result = cli("push", str(source), "ftp://host/x")
    assert result.returncode == 2 and result.stderr.startswith("error: cannot push to 'ftp://host/x'")

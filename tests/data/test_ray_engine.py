"""`prepare --engine ray` on a real two-node Ray cluster (loopback only, see ray_cluster.py): the same
bytes as a local run, and the same bytes again when the extra worker node is killed mid-run."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bertvault.data import prepare, ray_engine
from bertvault.data.shards import HEADER
from bertvault.errors import DataError

pytest.importorskip("ray", reason="the `ray` extra: pip install 'bertvault[ray]'")

SCENARIO = Path(__file__).with_name("ray_cluster.py")


def outputs(folder: Path) -> dict[str, bytes]:
    """Every file of a prepare output; the header without its timing."""
    files = {p.name: p.read_bytes() for p in folder.iterdir()}
    header = json.loads(files.pop(HEADER))
    header.pop("seconds")
    return {**files, HEADER: json.dumps(header, sort_keys=True).encode()}


@pytest.mark.timeout(420)
def test_ray_output_equals_local_output_even_when_a_node_dies(tmp_path, make_corpus, uncased_vocab):
    corpus = make_corpus(documents=150)
    local_cli, local_small = tmp_path / "local-cli", tmp_path / "local-small"
    subprocess.run([sys.executable, "-m", "bertvault", "prepare", str(corpus), "--vocab-from",
                    str(uncased_vocab), "--out", str(local_cli), "--workers", "2"],
                   check=True, capture_output=True, timeout=120)
    options = prepare.Options(format="tfrecord", dupe_factor=2, chunk_bytes=16_000)
    prepare.run(prepare.plan([str(corpus)], str(uncased_vocab), str(local_small), options))

    spec = {"vocab": str(uncased_vocab), "corpus": str(corpus), "cli_out": str(tmp_path / "ray-cli"),
            "kill_out": str(tmp_path / "ray-small"),
            "resume_out": str(tmp_path / "ray-resumed"), "report": str(tmp_path / "report.json")}
    (tmp_path / "spec.json").write_text(json.dumps(spec))
    run = subprocess.run(["unshare", "-n", "-p", "-f", "--mount-proc", sys.executable, str(SCENARIO),
                          str(tmp_path / "spec.json")], capture_output=True, text=True, timeout=400)
    assert run.returncode == 0, run.stderr[-3000:]
    report = json.loads((tmp_path / "report.json").read_text())

    assert outputs(tmp_path / "ray-cli") == outputs(local_cli)
    small = outputs(local_small)
    assert len([n for n in small if n.endswith(".tfrecord")]) >= 10  # items enough to spread and to lose
    assert report["killed"], "the extra worker node was not found to be killed"
    [after] = [int(line.split()[2]) for line in report["log"] if line.startswith("killed after")]
    assert after < report["items"], "the node was killed once every item was done"
    assert any("on 2 node(s)" in line for line in report["log"]), report["log"]
    assert outputs(tmp_path / "ray-small") == small
    assert outputs(tmp_path / "ray-resumed") == small
    shards = len([n for n in small if n.endswith(".tfrecord")])
    reruns = [int(line.split()[1]) for line in report["log"] if line.startswith("Ray: ")]
    assert len(reruns) == 2, report["log"]  # the kill run and the rerun: the stopped run says nothing
    assert reruns[1] <= shards - 3, f"the rerun ran {reruns[1]} of {shards} items; 3 were finished"
    leftovers = ray_engine.resume_folder(prepare.plan([str(corpus)], str(uncased_vocab), str(tmp_path / "x"),
                                                      options))
    assert not leftovers.exists()


def test_without_a_cluster_the_error_is_one_line(tmp_path, corpus, uncased_vocab):
    run = subprocess.run([sys.executable, "-m", "bertvault", "prepare", str(corpus), "--vocab-from",
                          str(uncased_vocab), "--out", str(tmp_path / "out"), "--engine", "ray",
                          "--ray-address", "127.0.0.1:1"],
                         capture_output=True, text=True, timeout=120)
    assert run.returncode != 0
    lines = run.stderr.strip().splitlines()
    assert lines[-1].startswith("error: cannot reach a Ray cluster at --ray-address 127.0.0.1:1"), run.stderr
    assert not (tmp_path / "out").exists()


def test_kept_items_last_until_gc_finds_them_untouched(tmp_path):
    from bertvault.cache import gc, layout

    fresh, old = layout.prepare_items_dir() / "fresh", layout.prepare_items_dir() / "old"
    for folder in (fresh, old):
        folder.mkdir(parents=True)
        (folder / "part-00000.tfrecord").write_bytes(b"x")
    week = time.time() - 8 * 86400
    for path in (old, old / "part-00000.tfrecord"):
        os.utime(path, (week, week))
    report = gc.gc()
    assert str(old) in report.partials and not old.exists()
    assert fresh.exists()  # a run stopped this week may be run again


def test_a_kept_record_naming_another_file_is_refused(tmp_path):
    keep = tmp_path / "keep"
    keep.mkdir()
    record = {"entry": {"file": "../../etc/passwd"}, "sha256": {}}
    (keep / "part-00003.item.json").write_text(json.dumps(record))
    with pytest.raises(DataError, match="not a shard"):
        ray_engine._kept(keep, 3)


def test_a_kept_item_is_reused_only_with_the_bytes_it_made(tmp_path):
    keep = tmp_path / "keep"
    keep.mkdir()
    entry = {"file": "part-00004.tfrecord", "examples": 2, "tokens": 9}
    ray_engine._keep(keep, 4, entry, {"examples": 2}, {"part-00004.tfrecord": b"records of item 4"})
    assert ray_engine._kept(keep, 4) == (4, entry, {"examples": 2})
    (keep / "part-00004.tfrecord").write_bytes(b"records of item 5")  # same size, other bytes
    assert ray_engine._kept(keep, 4) is None
    (keep / "part-00004.tfrecord").unlink()
    assert ray_engine._kept(keep, 4) is None

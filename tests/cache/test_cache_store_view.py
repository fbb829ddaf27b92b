"""The cache on its own: blobs installed by rename, views swapped in whole, locks that only save work."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time

import pytest

from bertvault.cache import layout, metadata, store, view
from bertvault.cache.locks import waiting_lock
from bertvault.io.owners import HOST


def test_install_is_atomic_and_read_only(home, tmp_path) -> None:
    source = layout.partial_dir() / "data"
    source.parent.mkdir(parents=True)
    source.write_bytes(b"weights")
    blob = store.install(source, "ab" * 32)
    assert blob == layout.blob_path("ab" * 32) and blob.read_bytes() == b"weights"
    assert not source.exists() and blob.stat().st_mode & 0o777 == 0o444
    assert store.has("ab" * 32) and not store.has("cd" * 32) and not store.has(None)
    assert store.place(blob, tmp_path / "a" / "b.bin") == "link"
    assert os.path.samestat((tmp_path / "a" / "b.bin").stat(), blob.stat())


def test_publish_swaps_a_whole_view_and_readers_never_see_none(home) -> None:
    with view.staging("m") as stage:
        (stage / "v1.txt").write_text("one")
        view.publish(stage, "m")
    target = layout.artifact_dir("m")
    seen_missing = []
    stop = threading.Event()

    def reader() -> None:
        while not stop.is_set():  # the path always resolves (an old view may be emptied under a reader)
            if not target.is_dir():
                seen_missing.append(target)

    thread = threading.Thread(target=reader)
    thread.start()
    for i in range(200):
        with view.staging("m") as stage:
            (stage / f"v{i}.txt").write_text(str(i))
            view.publish(stage, "m")
    stop.set()
    thread.join()
    assert os.listdir(target) == ["v199.txt"]
    assert seen_missing == []  # renameat2(RENAME_EXCHANGE): never a moment without a view
    assert [p.name for p in layout.artifacts_root().iterdir()] == ["m"]  # no staging left behind


def test_a_failed_build_leaves_the_old_view(home) -> None:
    with view.staging("m") as stage:
        (stage / "good.txt").write_text("good")
        view.publish(stage, "m")
    with pytest.raises(RuntimeError), view.staging("m") as stage:
        (stage / "half.txt").write_text("half")
        raise RuntimeError("extraction failed")
    assert os.listdir(layout.artifact_dir("m")) == ["good.txt"]
    assert [p.name for p in layout.artifacts_root().iterdir()] == ["m"]


def test_materialize_copies_a_view_with_links_kept(home, tmp_path) -> None:
    with view.staging("m") as stage:
        (stage / "d").mkdir()
        (stage / "d" / "a.txt").write_text("A")
        (stage / "d" / "b.txt").symlink_to("a.txt")
        view.publish(stage, "m")
    assert view.materialize(layout.artifact_dir("m"), tmp_path / "out") == 2
    assert ((tmp_path / "out" / "d" / "b.txt").read_text() == "A"
            and (tmp_path / "out" / "d" / "b.txt").is_symlink())


def test_metadata_updates_are_atomic_and_merged(home) -> None:
    metadata.record_file("m", "a.bin", {"sha256": "1" * 64, "size": 1})
    metadata.record_file("m", "b.bin", {"sha256": "2" * 64, "size": 2})
    metadata.update("m", lambda meta: meta.update(complete=True))
    meta = metadata.read("m")
    assert set(meta["files"]) == {"a.bin", "b.bin"} and layout.is_cached("m")
    assert metadata.names() == ["m"] and not list(layout.meta_dir().glob(".*"))


def test_a_waiting_process_says_what_it_waits_for(home) -> None:
    holder = subprocess.Popen([sys.executable, "-c", (
        "import sys, time\n"
        "from bertvault.cache.locks import waiting_lock\n"
        "with waiting_lock('f', 'bert/model.bin', print):\n"
        "    print('held', flush=True); time.sleep(1.5)\n")],
        stdout=subprocess.PIPE, text=True, env=os.environ.copy())
    assert holder.stdout.readline().strip() == "held"
    said: list[str] = []
    started = time.monotonic()
    with waiting_lock("f", "bert/model.bin", said.append, every=0.5) as held:
        waited = time.monotonic() - started
    holder.wait()
    assert held and waited > 0.5
    assert said and f"waiting for bertvault process {holder.pid}" in said[0] and "bert/model.bin" in said[0]


def test_a_lock_left_by_a_dead_owner_is_not_waited_for(home) -> None:
    layout.locks_dir().mkdir(parents=True)
    (layout.locks_dir() / "g.owner").write_text(json.dumps({"pid": 999999999, "host": HOST, "what": "x"}))
    from filelock import FileLock

    with FileLock(str(layout.locks_dir() / "g.lock")):  # held here, but its recorded owner is dead
        done = threading.Event()

        def other() -> None:
            with waiting_lock("g", "x", lambda _: None) as held:
                assert held is False
            done.set()

        thread = threading.Thread(target=other)
        thread.start()
        thread.join(5)
        assert done.is_set()

"""The output folder of `prepare`: shard files, vocab.txt and a JSON header, written atomically.

    bertvault-data.json            header (written last: a folder without it is not a dataset)
    vocab.txt                      copy of the vocab the ids refer to
    part-00000.ids.npy             native: token ids of A then B per example, no specials
                                   (uint16 when the vocab has at most 65536 tokens, else int32)
    part-00000.index.npy           native: int64 [n, 4] = start in ids, len A, len B, label
    part-00000.tfrecord            tfrecord: google-research/bert features, statically masked

Every file is first written under a staging folder inside the target folder (a temporary name,
then a rename); `Staging.commit` moves them into place and writes the header last, and a failure
removes the staging folder, so no half-written shard is ever left where a reader looks. A run
killed outright (kill -9) cannot clean up: its staging folder is named for its host and process,
and the next run into the same folder removes it once that process is gone.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import tempfile
from pathlib import Path

import numpy as np

from bertvault.data import features, tfrecord
from bertvault.data.pairs import Pairs
from bertvault.errors import DataError
from bertvault.io import owners, space

HEADER = "bertvault-data.json"
FORMAT = "bertvault-pretraining"
VERSION = 1
VOCAB = "vocab.txt"
TFRECORD_BLOCK = 2048  # examples masked and laid out together

log = logging.getLogger(__name__)


def token_dtype(vocab_size: int) -> str:
    return "uint16" if vocab_size <= 1 << 16 else "int32"


def _full(folder: Path, name: str) -> DataError:
    return DataError(f"{space.no_space(folder, what=f'writing {name}')}; free some space or give --out on a "
                     "larger disk (a run that fails this way leaves no shard)")


def _umask() -> int:
    current = os.umask(0)
    os.umask(current)
    return current


_MODE = 0o666 & ~_umask()  # what open() would give; mkstemp's files are private (0600)


class _Writes:
    """A file seen only through write(): numpy then writes arrays through it, so a full disk raises
    OSError(ENOSPC) (on a real file numpy's own fwrite says only "N requested and M written")."""

    def __init__(self, handle):
        self.write = handle.write


def _atomic(folder: Path, name: str, write) -> None:
    """write(handle) into a temporary file in `folder`, then rename it to `name`. A full disk is a
    DataError (the temporary file is removed; the caller removes the rest)."""
    try:
        fd, temporary = tempfile.mkstemp(dir=folder, prefix=f".{name}.", suffix=".tmp")
    except OSError as exc:
        if space.is_full(exc):
            raise _full(folder, name) from None
        raise
    try:
        with os.fdopen(fd, "wb") as handle:
            write(_Writes(handle))
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(temporary, _MODE)
        os.replace(temporary, folder / name)
    except BaseException as exc:
        Path(temporary).unlink(missing_ok=True)
        if space.is_full(exc):
            raise _full(folder, name) from None
        raise


def write_native(folder: Path, stem: str, pairs: Pairs, dtype: str) -> dict:
    ids_name, index_name = f"{stem}.ids.npy", f"{stem}.index.npy"
    _atomic(folder, ids_name, lambda h: np.save(h, pairs.tokens.astype(dtype)))
    _atomic(folder, index_name, lambda h: np.save(h, pairs.index.astype(np.int64)))
    return {"ids": ids_name, "index": index_name, "examples": len(pairs), "tokens": len(pairs.tokens)}


def write_tfrecord(folder: Path, stem: str, pairs: Pairs, seq_len: int, specials: features.Specials,
                   spec, rng: np.random.Generator) -> dict:
    name = f"{stem}.tfrecord"

    def write(handle) -> None:
        for at in range(0, len(pairs), TFRECORD_BLOCK):
            index = pairs.index[at : at + TFRECORD_BLOCK]
            batch = features.google_batch(pairs.tokens, index, seq_len, specials, spec, rng)
            handle.write(tfrecord.encode_records(batch))

    _atomic(folder, name, write)
    return {"file": name, "examples": len(pairs), "tokens": len(pairs.tokens)}


def write_json(folder: Path, name: str, data: dict) -> None:
    _atomic(folder, name, lambda h: h.write(json.dumps(data, indent=2).encode("utf-8")))


def read_header(folder: Path) -> dict:
    try:
        header = json.loads((folder / HEADER).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DataError(f"{folder} has no {HEADER}; it is not a `bertvault prepare` output "
                        "(or that run did not finish)") from None
    except (OSError, ValueError) as exc:
        raise DataError(f"{folder / HEADER}: unreadable ({exc})") from None
    if not isinstance(header, dict):
        raise DataError(f"{folder / HEADER}: a JSON {type(header).__name__}, not a `bertvault prepare` "
                        "header")
    if header.get("format") != FORMAT or header.get("version") != VERSION:
        found = f"format {header.get('format')!r} version {header.get('version')!r}"
        raise DataError(f"{folder / HEADER}: {found}; this bertvault reads {FORMAT!r} version {VERSION}")
    return header


STAGING = ".staging-"  # + owner tag (host@pid@random): whose it is, and whether that process still runs
# What a commit moves into place, and the temporary files of an atomic write: in a folder without a
# header, these and a dead run's staging folder are the leftovers of a prepare killed mid-commit.
OUTPUT_NAME = re.compile(r"part-\d+\.(ids\.npy|index\.npy|tfrecord)|vocab\.txt|\..+\.tmp")


def _staging_tag(child: Path) -> str | None:
    return child.name[len(STAGING):] if child.name.startswith(STAGING) and child.is_dir() else None


def reclaim(out: Path) -> list[str]:
    """Removes what a killed prepare left in `out` (the names removed): staging folders of processes of
    this host that no longer run and, when the folder has no header, the shards that a commit cut
    short had moved into place. Live runs' folders and anything else are left alone."""
    if not out.is_dir():
        return []
    children = list(out.iterdir())
    stale = [c for c in children if (tag := _staging_tag(c)) is not None and owners.is_stale(tag)]
    if not stale:
        return []
    rest = [c for c in children if c not in stale]
    ours = all(c.is_file() and OUTPUT_NAME.fullmatch(c.name) for c in rest)
    unfinished = ours and not (out / HEADER).exists()
    removed = stale + (rest if unfinished else [])
    for child in removed:
        if child.is_dir():
            shutil.rmtree(child, ignore_errors=True)
        else:
            child.unlink(missing_ok=True)
    log.warning("%s: removed %s, left by a prepare that was killed", out, ", ".join(c.name for c in removed))
    return [c.name for c in removed]


def check_out(out: Path) -> None:
    """A new or empty folder (once a killed run's leftovers are removed), and no live run in it."""
    if out.exists() and not out.is_dir():
        raise DataError(f"--out {out} is a file; give a folder")
    reclaim(out)
    if not out.is_dir() or not any(out.iterdir()):
        return
    live = [owners.owner_of(tag) for c in out.iterdir() if (tag := _staging_tag(c)) and owners.in_use(tag)]
    if live:
        raise DataError(f"--out {out} is being written by another prepare (process {live[0][1]} on this "
                        "host); wait for it to finish, or give another folder")
    raise DataError(f"--out {out} is not empty; give a new or empty folder (delete the old output first)")


class Staging:
    """A temporary folder inside the output folder, named for its owner; everything moves into place
    on commit. A run killed before that leaves it behind, and the next run removes it (`reclaim`)."""

    def __init__(self, out: Path):
        self.out = out
        check_out(out)
        self.created = not out.exists()
        try:
            out.mkdir(parents=True, exist_ok=True)
            self.path = out / f"{STAGING}{owners.new_tag()}"
            self.path.mkdir(mode=0o700)
        except OSError as exc:
            raise DataError(f"cannot create --out {out}: {exc.strerror}") from None

    def commit(self, header: dict, vocab: Path) -> None:
        _atomic(self.path, VOCAB, lambda handle: handle.write(vocab.read_bytes()))
        for item in sorted(self.path.iterdir()):
            os.replace(item, self.out / item.name)
        write_json(self.out, HEADER, header)
        self.path.rmdir()

    def abort(self) -> None:
        shutil.rmtree(self.path, ignore_errors=True)
        if self.created:
            try:
                self.out.rmdir()
            except OSError:
                pass

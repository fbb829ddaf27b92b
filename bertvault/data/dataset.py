"""The training-side dataset: pretraining examples with dynamic masking, as a map-style torch Dataset.

Sources: `bertvault prepare` output folders (native shards, memory-mapped; this includes converted
AzureML shards) and google-research/bert TFRecord files (a prepared tfrecord folder, files, globs
or folders of them). TFRecord examples are unmasked back to their original tokens (from
masked_lm_ids) and masked anew like the rest.

Each item is a dict of torch tensors; S = seq_len, P = max_predictions:

    input_ids            [S] int64  [CLS] A [SEP] B [SEP] with masking applied, [PAD]-padded
    token_type_ids       [S] int64  0 for [CLS] A [SEP], 1 for B [SEP]
    attention_mask       [S] int64  1 on real tokens, 0 on padding
    labels               [S] int64  the original id at masked positions, -100 elsewhere
    next_sentence_label  []  int64  1 when B is a random sentence, 0 when it follows A
    masked_lm_positions  [P] int64  masked positions, sorted, padded with 0
    masked_lm_ids        [P] int64  original ids there, padded with 0
    masked_lm_weights    [P] float32  1.0 for a prediction, 0.0 for padding

The first five are exactly `transformers.BertForPreTraining`'s arguments (MODEL_INPUTS):
`model(**{k: batch[k] for k in MODEL_INPUTS})`. A trainer that runs the MLM head only on masked
positions gathers `hidden[b, masked_lm_positions]` and weighs the loss with masked_lm_weights.

Masking (80% [MASK], 10% original, 10% random; whole words optional) follows
google-research/bert and is drawn from (seed, epoch, example), so every epoch masks differently
and the same (seed, epoch, example) always gives the same item.

Order: epoch e visits all examples in a seeded pseudo-random permutation (or in file order with
shuffle=False); rank r of W takes permuted positions r, r+W, r+2W, ... so the ranks together cover
every example exactly once (with drop_remainder=True each rank gets the same count, and up to
W-1 examples are left out of that epoch). Item k of a rank is position r + (start + k)·W: to
resume after a rank consumed n items of epoch e, build the dataset with epoch=e, start=n.

With `window` (and always for a streamed folder, whose shards arrive while it is read) the order is
order.py's instead: shards shuffled, each rank a contiguous run of them, examples shuffled within
windows of a few shards; `start` resumes it the same way.
"""

from __future__ import annotations

import glob
import os
import random
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from bertvault.data import features, order, pairs, shards, tfrecord
from bertvault.data.permutation import Permutation
from bertvault.data.streamed import StreamedFolder
from bertvault.errors import DataError
from bertvault.formats.vocab import read_vocab, vocab_sha256, vocab_tokens

MODEL_INPUTS = ("input_ids", "token_type_ids", "attention_mask", "labels", "next_sentence_label")


class _Native:
    """One native prepare output folder; memory maps open lazily in each process."""

    def __init__(self, folder: Path, header: dict):
        self.folder = folder
        self.entries = header["shards"]
        missing = [e[k] for e in self.entries for k in ("ids", "index") if not (folder / e[k]).is_file()]
        if missing:
            raise DataError(f"{folder}: shard files missing ({', '.join(missing[:3])}); "
                            "the folder is incomplete")
        self.shard_counts = [int(e["examples"]) for e in self.entries]
        self.bounds = np.cumsum([0] + self.shard_counts)
        self.seq_len = header["seq_len"]
        self._maps: list | None = None

    def __len__(self) -> int:
        return int(self.bounds[-1])

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_maps": None}  # never pickle the mapped arrays (they would be copied)

    def _open(self) -> list:
        if self._maps is None:
            self._maps = [
                tuple(np.load(self.folder / e[part], mmap_mode="r") for part in ("ids", "index"))
                for e in self.entries
            ]
        return self._maps

    def pair(self, i: int) -> tuple[np.ndarray, np.ndarray, int]:
        shard = int(np.searchsorted(self.bounds, i, side="right")) - 1
        ids, index = self._open()[shard]
        start, len_a, len_b, label = (int(v) for v in index[i - self.bounds[shard]])
        tokens = np.asarray(ids[start : start + len_a + len_b], dtype=np.int64)
        return tokens[:len_a], tokens[len_a:], label


class _TFRecords:
    """TFRecord files, indexed once (record offsets), read with pread in each process."""

    def __init__(self, files: list[Path]):
        self.files = files
        self.index = [tfrecord.index(f) for f in files]
        self.shard_counts = [len(ix) for ix in self.index]
        self.bounds = np.cumsum([0] + self.shard_counts)
        self._fds: dict[int, int] = {}
        self._pid = os.getpid()
        self.seq_len = len(self._features(0)["input_ids"]) if len(self) else 0

    def __len__(self) -> int:
        return int(self.bounds[-1])

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_fds": {}}

    def _features(self, i: int) -> dict:
        if self._pid != os.getpid():  # a forked DataLoader worker opens its own descriptors
            self._fds, self._pid = {}, os.getpid()
        f = int(np.searchsorted(self.bounds, i, side="right")) - 1
        if f not in self._fds:
            self._fds[f] = os.open(self.files[f], os.O_RDONLY)
        offset, length = (int(v) for v in self.index[f][i - self.bounds[f]])
        data = os.pread(self._fds[f], length + 4, offset)
        stored = int.from_bytes(data[length:], "little")
        if len(data) != length + 4 or tfrecord.masked_crc(data[:length]) != stored:
            raise DataError(f"{self.files[f]}: corrupt record at byte {offset} (data checksum mismatch)")
        return tfrecord.decode_example(data[:length], f"{self.files[f]} record {i - self.bounds[f]}")

    def pair(self, i: int) -> tuple[np.ndarray, np.ndarray, int]:
        return features.pair_from_google(self._features(i))

    def __del__(self) -> None:
        if getattr(self, "_pid", None) == os.getpid():
            for fd in self._fds.values():
                os.close(fd)


def _tfrecord_files(path: Path) -> list[Path]:
    candidates = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    found = []
    for p in candidates:
        with open(p, "rb") as handle:
            if tfrecord.is_tfrecord(handle.read(12)):
                found.append(p)
    return found


def _open_source(spec: str | Path | StreamedFolder) -> tuple[object, dict | None, Path | None]:
    """(source, header or None, folder holding its vocab.txt or None)."""
    if isinstance(spec, StreamedFolder):
        return spec.open(), spec.header, spec.folder
    path = Path(spec).expanduser()
    if path.is_dir() and (path / shards.HEADER).is_file():
        header = shards.read_header(path)
        if header["kind"] == "native":
            return _Native(path, header), header, path
        return _TFRecords([path / e["file"] for e in header["shards"]]), header, path
    paths = [Path(p) for p in sorted(glob.glob(str(path)))] if glob.has_magic(str(spec)) else [path]
    files = [f for p in paths if p.exists() for f in _tfrecord_files(p)]
    if not files:
        raise DataError(f"{spec}: neither a `bertvault prepare` output folder nor TFRecord files")
    return _TFRecords(files), None, None


class PretrainingDataset(Dataset):
    """Masked-LM + next-sentence examples; see the module docstring for the keys and the order."""

    def __init__(
        self,
        sources: str | Path | StreamedFolder | list[str | Path | StreamedFolder],
        *,
        vocab: str | Path | None = None,
        seed: int = 0,
        epoch: int = 0,
        start: int = 0,
        rank: int = 0,
        world_size: int = 1,
        shuffle: bool = True,
        drop_remainder: bool = False,
        seq_len: int | None = None,
        max_predictions: int | None = None,
        masked_lm_prob: float | None = None,
        whole_word_mask: bool | None = None,
        window: int | None = None,
    ):
        if not 0 <= rank < world_size:
            raise DataError(f"rank {rank} is outside 0..{world_size - 1} (world_size {world_size})")
        specs = sources if isinstance(sources, list | tuple) else [sources]
        opened = [_open_source(s) for s in specs]
        self.sources = [s for s, _, _ in opened]
        headers = [h for _, h, _ in opened if h is not None]
        vocab_path = self._vocab(vocab, opened)
        options = headers[0]["options"] if headers else {}
        tokens = vocab_tokens(vocab_path)
        table = read_vocab(vocab_path)
        self.specials = features.Specials.of(table)
        self.spec = features.mask_spec(
            tokens, table,
            max_predictions or options.get("max_predictions", 20),
            masked_lm_prob or options.get("masked_lm_prob", 0.15),
            options.get("whole_word_mask", False) if whole_word_mask is None else whole_word_mask,
        )
        self.seq_len = seq_len or max(s.seq_len for s in self.sources)
        if self.seq_len < 8:
            raise DataError(f"seq_len {self.seq_len} is below 8")
        self.bounds = np.cumsum([0] + [len(s) for s in self.sources])
        self.shard_bounds = np.cumsum([0] + [len(s.shard_counts) for s in self.sources])
        streamed = any(isinstance(s, StreamedFolder) for s in specs)
        self.window = window or (order.WINDOW if streamed else None)
        self.seed, self.rank, self.world_size = seed, rank, world_size
        self.shuffle, self.drop_remainder = shuffle, drop_remainder
        self.set_epoch(epoch, start)

    @staticmethod
    def _vocab(vocab, opened) -> Path:
        folders = [folder for _, header, folder in opened if folder is not None]
        digests = {shards.read_header(f)["vocab"]["sha256"] for f in folders}
        if len(digests) > 1:
            raise DataError("the sources were prepared with different vocabularies; "
                            "train on one vocab at a time")
        if vocab is not None:
            path = Path(vocab).expanduser()
            path = path / "vocab.txt" if path.is_dir() else path
            if digests and vocab_sha256(path) not in digests:
                raise DataError(f"vocab {path} is not the vocab the data was prepared with "
                                f"({folders[0] / shards.VOCAB})")
            return path
        if not folders:
            raise DataError("TFRecord sources carry no vocab: pass vocab= (the checkpoint's vocab.txt)")
        return folders[0] / shards.VOCAB

    @property
    def num_examples(self) -> int:
        return int(self.bounds[-1])

    def set_epoch(self, epoch: int, start: int = 0) -> None:
        """Move to `epoch`, skipping the first `start` items of this rank (resume)."""
        total, w = self.num_examples, self.world_size
        per_rank = total // w if self.drop_remainder else max(0, (total - self.rank + w - 1) // w)
        if not 0 <= start <= per_rank:
            raise DataError(f"start {start} is outside 0..{per_rank} (items of rank {self.rank} per epoch)")
        self.epoch, self.start, self._per_rank = epoch, start, per_rank
        self._order = Permutation(total, [self.seed, epoch]) if self.shuffle and not self.window else None
        self._shard_order = self.shard_order(epoch) if self.window else None

    def shard_order(self, epoch: int) -> order.ShardOrder:
        """Epoch `epoch`'s order of this rank's items, by shard (only with a window)."""
        counts = [c for s in self.sources for c in s.shard_counts]
        return order.ShardOrder(counts, seed=self.seed, epoch=epoch, rank=self.rank,
                                world_size=self.world_size, shuffle=self.shuffle,
                                window=self.window if self.shuffle else 1, drop_remainder=self.drop_remainder)

    def shard_files(self, shard: int) -> list[str]:
        """The files of shard `shard` (numbered across the sources) in its streamed folder."""
        source = int(np.searchsorted(self.shard_bounds, shard, side="right")) - 1
        return self.sources[source].files(shard - int(self.shard_bounds[source]))

    def __len__(self) -> int:
        return self._per_rank - self.start

    def example_index(self, k: int) -> int:
        """The global example behind item k of this rank (for checks and logging)."""
        if not 0 <= k < len(self):
            raise IndexError(k)
        if self._shard_order is not None:
            return self._shard_order.example(self.start + k)
        position = self.rank + (self.start + k) * self.world_size
        return int(self._order(position)[0]) if self._order is not None else position

    def pair(self, example: int) -> tuple[np.ndarray, np.ndarray, int]:
        source = int(np.searchsorted(self.bounds, example, side="right")) - 1
        return self.sources[source].pair(example - int(self.bounds[source]))

    def __getitem__(self, k: int) -> dict[str, torch.Tensor]:
        example = self.example_index(k)
        a, b, label = self.pair(example)
        rng = np.random.default_rng([self.seed, self.epoch, example])
        if len(a) + len(b) > self.seq_len - 3:
            cut_a, cut_b = pairs.truncation(len(a), len(b), self.seq_len - 3)
            coin = random.Random(int(rng.integers(2**63)))
            a0, _ = pairs.cut(0, len(a), cut_a, coin)
            b0, _ = pairs.cut(0, len(b), cut_b, coin)
            a, b = a[a0 : a0 + len(a) - cut_a], b[b0 : b0 + len(b) - cut_b]
        example_arrays = features.build(a, b, label, self.seq_len, self.specials, self.spec, rng)
        return {k: torch.from_numpy(v) for k, v in features.model_inputs(example_arrays).items()}

"""AzureML-BERT's pickled pretraining shards (`wikipedia_segmented_part_N.bin`), read safely.

Each shard is one pickle of a whole data-creator object holding `instances`, a list of
`TokenInstance(tokens_a, tokens_b, is_next)` with WordPiece token strings (is_next = 1 when B is
random). Unpickling can run any code a file names, so `SafeUnpickler.find_class` admits only those
classes, under the module names the shards were written with, mapped to the plain classes below,
and refuses every other global (os.system, builtins.eval, ...) before anything is called. The
work is bounded by what the file can hold: a pickle names an object once and then refers to it by
a 2-byte reference, so a crafted 128 KB shard listing one instance 60,000 times would expand to
gigabytes of token ids. Sets copied by a call are counted while unpickling, and tokens before any
is converted; a file that holds more of them than its bytes is refused (UnsafeInput).

The pickle holds the whole shard: loading and converting it takes about `memory_factor` times the
file size in memory (lists of small Python strings: ~70 bytes per token against 5-11 on disk),
so a shard is converted once to native shards.
"""

from __future__ import annotations

import io
import logging
import os
import pickle
from collections import Counter
from itertools import chain, repeat
from pathlib import Path

import numpy as np

from bertvault.data.pairs import Pairs
from bertvault.errors import DataError, UnsafeInput

log = logging.getLogger(__name__)

# Peak memory / file size, measured on a synthetic shard of realistic WordPiece strings (one str
# object per token, as a tokenizer makes them) including the conversion to ids: protocols 2-3
# spend ~11 bytes per token on disk (LONG_BINPUT memo), 4-5 ~6 (MEMOIZE, framing).
MEMORY_FACTOR = {2: 7, 3: 7, 4: 12, 5: 12}


class DataCreator:
    """Stands in for AzureML-BERT's *PretrainingDataCreator: only its attributes are kept."""

    def __init__(self, *args, **kwargs) -> None:  # never called by the unpickler (NEWOBJ/BUILD)
        pass


class TokenInstance:
    """Stands in for AzureML-BERT's TokenInstance(tokens_a, tokens_b, is_next)."""

    def __init__(self, tokens_a=None, tokens_b=None, is_next=0, *args, **kwargs) -> None:
        self.tokens_a, self.tokens_b, self.is_next = tokens_a, tokens_b, is_next


CREATORS = (
    "GenericPretrainingDataCreator",
    "WikiNBookCorpusPretrainingDataCreator",
    "WikiPretrainingDataCreator",
    "BookCorpusPretrainingDataCreator",
    "PretrainingDataCreator",
)
MODULES = ("__main__", "sources", "turing.sources")


def _reconstructor(cls, base, state):
    """copyreg._reconstructor (protocols 0 and 1), limited to admitted classes on `object`."""
    if cls not in (DataCreator, TokenInstance) or base is not object or state is not None:
        raise pickle.UnpicklingError("copyreg._reconstructor with a class or base that is not admitted")
    return object.__new__(cls)


ALLOWED: dict[tuple[str, str], object] = {
    **{(module, name): DataCreator for module in MODULES for name in CREATORS},
    **{(module, "TokenInstance"): TokenInstance for module in MODULES},
    ("copyreg", "_reconstructor"): _reconstructor,
    ("copy_reg", "_reconstructor"): _reconstructor,
    ("builtins", "object"): object,
    ("__builtin__", "object"): object,
    ("builtins", "set"): set,
    ("builtins", "frozenset"): frozenset,
    ("__builtin__", "set"): set,  # protocols 0-2 as Python 3 writes them
    ("__builtin__", "frozenset"): frozenset,
}


class SafeUnpickler(pickle.Unpickler):
    """Admits ALLOWED only. A set or frozenset built by a call copies its argument, which the file
    names by a 2-byte memo reference: those copies are charged against `budget` (elements), so a
    small file cannot make the unpickler build gigabytes."""

    def __init__(self, file, budget: int):
        super().__init__(file)
        self.budget = budget

    def _charged(self, kind):
        def build(items=()):
            items = list(items) if not isinstance(items, list | tuple | set | frozenset) else items
            self.budget -= len(items)
            if self.budget < 0:
                raise UnsafeInput("its sets copy more elements than the file holds; refused (a crafted "
                                  "pickle that expands in memory)")
            return kind(items)

        return build

    def find_class(self, module: str, name: str):
        try:
            found = ALLOWED[(module, name)]
        except KeyError:
            raise UnsafeInput(
                f"pickle names {module}.{name}, which an AzureML shard never holds; refused without running "
                "it (only the data-creator classes and TokenInstance are admitted)"
            ) from None
        return self._charged(found) if found in (set, frozenset) else found


def memory_factor(path: Path) -> int:
    with open(path, "rb") as handle:
        head = handle.read(2)
    return MEMORY_FACTOR.get(head[1] if len(head) == 2 else 4, 12)


def memory_estimate(path: Path) -> int:
    return path.stat().st_size * memory_factor(path)


def available_memory() -> int | None:
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def load(path: Path) -> list[TokenInstance]:
    """The instances of one shard; UnsafeInput for a foreign class or a file that expands beyond what
    it can hold, DataError for anything malformed."""
    size = path.stat().st_size
    try:
        with open(path, "rb") as handle:
            obj = SafeUnpickler(io.BufferedReader(handle, 1 << 20), budget=size).load()
    except UnsafeInput as exc:
        raise UnsafeInput(f"{path}: {exc}") from None
    except MemoryError:
        raise DataError(f"{path}: out of memory while unpickling; it needs about "
                        f"{memory_estimate(path) / 1e9:.1f} GB") from None
    except Exception as exc:  # noqa: BLE001 - a damaged pickle raises nearly anything (EOFError, ValueError, ...)
        raise DataError(f"{path}: not a readable AzureML shard ({type(exc).__name__}: {exc})") from None
    instances = getattr(obj, "instances", None) if isinstance(obj, DataCreator) else None
    if not isinstance(instances, list):
        raise DataError(f"{path}: expected a data-creator object with an `instances` list, "
                        f"got {type(obj).__name__}")
    bad = sum(1 for inst in instances if not _shaped(inst))
    if not bad:
        _check_expansion(path, instances, size)
        bad = sum(1 for inst in instances if not _strings(inst))
    if bad:
        raise DataError(f"{path}: {bad} of {len(instances)} instances are not "
                        "TokenInstance(list of str, list of str, 0/1)")
    return instances


def _check_expansion(path: Path, instances: list[TokenInstance], size: int) -> None:
    """Every token of a real shard is its own list entry, at least 2 bytes of the file (a memo
    reference); a pickle whose instances share token lists (or one instance listed over and over)
    would expand far beyond its size when converted. Counted before a single token is read."""
    tokens = sum(len(inst.tokens_a) + len(inst.tokens_b) for inst in instances)
    if tokens > size:
        raise UnsafeInput(
            f"{path}: its {len(instances):,} instances hold {tokens:,} tokens, more than the file's {size:,} "
            "bytes can store (each token takes at least 2): they share lists by reference, which an AzureML "
            "shard never does; refused (a crafted pickle that expands in memory)"
        )


def _shaped(inst) -> bool:
    return (
        isinstance(inst, TokenInstance)
        and isinstance(inst.tokens_a, list)
        and isinstance(inst.tokens_b, list)
        and inst.is_next in (0, 1, True, False)
    )


def _strings(inst: TokenInstance) -> bool:
    return all(isinstance(t, str) for t in chain(inst.tokens_a, inst.tokens_b))


def to_pairs(instances: list[TokenInstance], vocab: dict[str, int]) -> Pairs:
    """Token strings → ids; unknown strings become [UNK] and are counted in stats['unknown']."""
    unk = vocab["[UNK]"]
    strings = list(chain.from_iterable(side for i in instances for side in (i.tokens_a, i.tokens_b)))
    ids = np.fromiter(map(vocab.get, strings, repeat(-1)), dtype=np.int64, count=len(strings))
    unknown_at = np.flatnonzero(ids < 0)
    unknown = Counter(strings[k] for k in unknown_at.tolist())
    ids[unknown_at] = unk
    len_a = np.fromiter((len(i.tokens_a) for i in instances), dtype=np.int64, count=len(instances))
    len_b = np.fromiter((len(i.tokens_b) for i in instances), dtype=np.int64, count=len(instances))
    labels = np.fromiter((int(i.is_next) for i in instances), dtype=np.int64, count=len(instances))
    starts = np.concatenate([[0], np.cumsum(len_a + len_b)[:-1]]) if len(instances) else np.zeros(0, np.int64)
    keep = (len_a > 0) & (len_b > 0)
    index = np.stack([starts, len_a, len_b, labels], axis=1)[keep]
    return Pairs(ids, index, {"strings": len(strings), "unknown": dict(unknown.most_common(20)),
                              "unknown_count": len(unknown_at), "empty_side": int((~keep).sum())})

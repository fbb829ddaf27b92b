"""The one place where what a user typed becomes something: a `Source`.

`resolve(text, want)` takes a registered name or alias, a local path (file, TF prefix, folder, glob)
or a URL (gs://, hf://, https://; pulled, verified and cached first) and returns a `Source`: the
local path, the registered artifact it names, and, as asked (`want`):

    "path"        nothing more (push, data)
    "vocab"       the vocab.txt and whether its text is lower-cased
    "checkpoint"  the weights' format, their tensors opened once, the vocab and its case

Every command takes a Source and never reads the user's string again. `remote_folder(text)` lists a
gs:// prefix without pulling it, for a command that fetches its files as it reads them (pretrain
streams its data). Where a string is resolved
(locations, registry lookups) is remembered for the life of the process, and handed to the
processes a launcher starts (`handed_to_children`), so ranks do not repeat it.

Case (lower-casing and accent stripping, or not) is decided here, once, by one rule, first answer
wins:
  1. the user's --lowercase/--no-lowercase;
  2. the registry: `architecture.cased` of the artifact, or of the artifact it takes its vocab
     from (`vocab_from`, followed);
  3. `do_lower_case` in tokenizer_config.json, config.json or bert_config.json beside the vocab (in
     that order of precedence);
  4. the vocab itself: cased when at least 1% of its ordinary tokens hold an upper-case letter
     (google's uncased vocab has 2 such tokens in 30522; a cased one has thousands).
"""

from __future__ import annotations

import contextlib
import glob
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from bertvault.errors import BertvaultError, ConversionError, DataError, ManifestError, UsageError

if TYPE_CHECKING:
    from bertvault.formats.detect import Opened
    from bertvault.registry.schema import Architecture, Artifact

Want = Literal["path", "vocab", "checkpoint"]
CASE_FILES = ("tokenizer_config.json", "config.json", "bert_config.json")
_HANDED = "BERTVAULT_RESOLVED"  # environment: where the launcher found each source


@dataclass
class Source:
    text: str  # what the user typed
    path: Path  # where it is on this machine: the file, TF prefix or folder (the cache view for names)
    artifact: Artifact | None = None  # the registered artifact the text names
    chain: tuple[Artifact, ...] = ()  # the artifact, then those it takes its vocab from
    checkpoint: Opened | None = None  # want="checkpoint": the weights, opened once
    vocab: Path | None = None
    lowercase: bool | None = None
    case_from: str = ""  # which rule decided `lowercase`

    @property
    def name(self) -> str:
        """The registered name, else the text as typed."""
        return self.artifact.name if self.artifact else self.text

    @property
    def is_pattern(self) -> bool:
        return glob.has_magic(self.text) and not self.path.exists()

    def architecture(self) -> Architecture | None:
        """The first registered architecture along the artifact and its vocab donors."""
        return next((a.architecture for a in self.chain if a.architecture is not None), None)

    def close(self) -> None:
        if self.checkpoint is not None:
            self.checkpoint.close()


# --- where the text points -------------------------------------------------------------------------

_located: dict[str, tuple[Path, str | None]] = {}


def _handed() -> dict[str, list]:
    try:
        data = json.loads(os.environ.get(_HANDED, "{}"))
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


@contextlib.contextmanager
def handed_to_children() -> Iterator[None]:
    """Where each name or URL was found, in the environment of the processes launched meanwhile."""
    os.environ[_HANDED] = json.dumps({key.split("\0")[0]: [str(path), name]
                                      for key, (path, name) in _located.items()})
    try:
        yield
    finally:
        os.environ.pop(_HANDED, None)


def registry():
    from bertvault.registry import load_registry

    return load_registry()


def _artifact(name: str | None) -> Artifact | None:
    return registry().get(name) if name else None


def _not_pulled(name: str) -> ManifestError:
    return ManifestError(f"{name!r} is not in the cache; run `bertvault pull {name}` first")


def _is_cached(name: str) -> bool:
    from bertvault.cache import layout

    return layout.is_cached(name)


def _key(text: str) -> str:
    """Names and URLs mean a place in a cache, as configured now (tests and tools change it)."""
    from bertvault import paths

    return "\0".join((text, str(paths.home()), os.environ.get("BERTVAULT_MANIFESTS", ""),
                      str(paths.user_manifests_dir())))


def _locate(text: str) -> tuple[Path, str | None]:
    """(local path, registered name or None) for what the user typed."""
    handed = _handed().get(text)
    if isinstance(handed, list) and len(handed) == 2:
        return Path(handed[0]), handed[1]
    if _key(text) in _located:
        return _located[_key(text)]
    if "://" in text:
        from bertvault.fetch.urls import pull_url

        found: tuple[Path, str | None] = (pull_url(text), None)
    else:
        found = _local_or_registered(text)
    if found[1] is not None or "://" in text:  # a local path is looked at afresh each time (it may change)
        _located[_key(text)] = found
    return found


_listed: dict[str, Artifact] = {}


def remote_folder(text: str) -> Artifact | None:
    """A gs:// URL as the artifact of the objects it names, listed but not pulled, for a command that
    fetches them as it reads them (pretrain streams its data); None for any other text. The listing
    is made once per process."""
    if not text.startswith("gs://"):
        return None
    if _key(text) not in _listed:
        from bertvault.fetch.urls import artifact_for

        _listed[_key(text)] = artifact_for(text)
    return _listed[_key(text)]


def _local_or_registered(text: str) -> tuple[Path, str | None]:
    from bertvault.formats.detect import tf_prefix

    path = Path(text).expanduser()
    if path.exists() or tf_prefix(path) is not None or (glob.has_magic(text) and glob.glob(str(path))):
        return path, None
    if text in registry():
        from bertvault.cache import layout

        name = registry().get(text).name
        return layout.artifact_dir(name), name
    hint = registry().suggest(text)
    raise ManifestError(f"{text!r} is neither an existing path nor a registered artifact{hint}")


def _chain(artifact: Artifact | None) -> tuple[Artifact, ...]:
    """The artifact, then each one it takes its vocab from."""
    chain: list[Artifact] = []
    while artifact is not None:
        if any(a.name == artifact.name for a in chain):
            raise ManifestError(f"vocab_from of {chain[-1].name!r} loops back to {artifact.name!r}")
        chain.append(artifact)
        artifact = registry().get(artifact.vocab_from) if artifact.vocab_from else None
    return tuple(chain)


# --- the vocab and its case --------------------------------------------------------------------------

def find_vocab(folder: Path) -> Path | None:
    """The vocab.txt in `folder` or below it; several below it (and none on top) is an error."""
    direct = folder / "vocab.txt"
    if direct.is_file():
        return direct
    found = sorted(folder.rglob("vocab.txt")) if folder.is_dir() else []
    if len(found) > 1:
        listed = ", ".join(str(p) for p in found[:5])
        raise DataError(f"{folder} holds {len(found)} vocab.txt files ({listed}); pass the one you mean")
    return found[0] if found else None


def _donor_vocab(chain: tuple[Artifact, ...], error: type[BertvaultError]) -> Path | None:
    """The vocab of the first artifact in the chain that has one, which must be in the cache."""
    from bertvault.cache import layout

    for artifact in chain:
        if _is_cached(artifact.name):
            vocab = find_vocab(layout.artifact_dir(artifact.name))
            if vocab is not None:
                return vocab
        elif artifact is not chain[0]:
            raise error(
                f"{chain[0].name} has no vocab of its own and takes it from {artifact.name}, "
                f"which is not in the cache; run `bertvault pull {artifact.name}` first"
            )
    return None


def case_files(folder: Path) -> dict:
    """The JSON files beside a vocab that may say `do_lower_case`, merged (the earlier in CASE_FILES win)."""
    merged: dict = {}
    for name in reversed(CASE_FILES):
        try:
            data = json.loads((folder / name).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if isinstance(data, dict):
            merged.update(data)
    return merged


def decide_case(chain: tuple[Artifact, ...], folder: Path | None, vocab: Path | None,
                given: bool | None = None) -> tuple[bool | None, str]:
    """(lower-case?, which rule said so): the module's rule, in its order."""
    if given is not None:
        return given, "command line"
    owner = next((a for a in chain if a.architecture is not None), None)
    if owner is not None:
        return not owner.architecture.cased, f"registry entry {owner.name}"
    for place in dict.fromkeys(p for p in (vocab.parent if vocab else None, folder) if p is not None):
        value = case_files(place).get("do_lower_case")
        if isinstance(value, bool):
            return value, f"do_lower_case in {place}"
    if vocab is None:
        return None, ""
    from bertvault.formats.vocab import looks_cased, vocab_tokens

    return not looks_cased(vocab_tokens(vocab)), "vocab heuristic (upper-case tokens)"


# --- resolve -----------------------------------------------------------------------------------------

def resolve(text: str, want: Want = "path", *, from_format: str | None = None,
            vocab: Path | None = None, lowercase: bool | None = None) -> Source:
    """What `text` names, as `want` needs it (see the module docstring).

    `from_format` overrides format detection; `vocab` and `lowercase` override what the source
    carries (--vocab, --lowercase/--no-lowercase)."""
    if vocab is not None and not Path(vocab).is_file():
        raise UsageError(f"--vocab {vocab}: no such file")
    path, name = _locate(str(text))
    artifact = _artifact(name)
    source = Source(str(text), path, artifact, _chain(artifact))
    from_donor = want == "vocab" and len(source.chain) > 1  # a vocab may come from a donor alone
    if artifact is not None and not _is_cached(artifact.name) and not from_donor:
        raise _not_pulled(artifact.name)
    if want == "checkpoint":
        _open_checkpoint(source, from_format)
        folder = source.checkpoint.folder if source.checkpoint else path
        source.vocab = vocab or (folder / "vocab.txt" if (folder / "vocab.txt").is_file() else None) \
            or _donor_vocab(source.chain, ConversionError)
    elif want == "vocab":
        source.vocab = vocab or _vocab_at(source)
        folder = source.vocab.parent
    else:
        return source
    source.lowercase, source.case_from = decide_case(source.chain, folder, source.vocab, lowercase)
    return source


def _vocab_at(source: Source) -> Path:
    path = source.path
    if path.is_file():
        return path
    found = find_vocab(path) if path.is_dir() else None
    if found is None and source.chain:
        found = _donor_vocab(source.chain, ManifestError)
    if found is None:
        raise DataError(
            f"no vocab.txt in {path}; pass the vocab file itself or a checkpoint folder holding one"
        )
    return found


def _open_checkpoint(source: Source, from_format: str | None) -> None:
    from bertvault import formats
    from bertvault.formats.detect import locate

    fmt = from_format
    if fmt is None and source.artifact is not None:
        fmt = formats.FROM_MANIFEST.get(source.artifact.format)
        if fmt is None:
            raise ConversionError(f"{source.artifact.name} is a {source.artifact.format} artifact, "
                                  "not a checkpoint bertvault converts")
    source.checkpoint = locate(source.path, fmt)

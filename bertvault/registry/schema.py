"""The manifest schema: what a published artifact is, where its files live, what hashes pin them.

A manifest file is TOML with one `[[artifact]]` table per artifact. Files are listed one by one
(`[[artifact.files]]`) or, for numbered shard families, as a series (`[[artifact.shards]]`) that
is expanded into files when the manifest is loaded. An archive may list the published sha256 of
files inside it (`[artifact.files.members]`), checked once it is extracted. A `[[pin]]` table adds
hashes (and sizes, and commit-pinned URLs) learned later to an artifact declared elsewhere, without
redeclaring it.

Two kinds of size: `size` is exact and verified; `approx_size` is only shown (`~420 MB`), for files
whose exact size nobody published.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable
from typing import Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from bertvault import relpath

SCHEMES = ("https", "http", "gs", "hf", "file")

FORMATS = {
    "tf1-checkpoint": "google-research/bert TF1 checkpoint "
                      "(bert_model.ckpt.* + bert_config.json + vocab.txt)",
    "tf2-checkpoint": "TF2 Model Garden object-based checkpoint",
    "hf-safetensors": "Hugging Face repository with model.safetensors",
    "hf-pytorch": "Hugging Face repository with pytorch_model.bin",
    "azureml-encoder-pt": "AzureML-BERT encoder state dict (.pt), no heads, no vocab",
    "nvidia-pt": "NVIDIA DeepLearningExamples BERT checkpoint (.pt)",
    "bundle": "an archive of several checkpoints",
    "azureml-shards": "AzureML-BERT pickled pretraining shards (.bin)",
    "tfrecord": "google-research/bert pretraining TFRecords",
    "text": "raw text, one sentence per line, blank line between documents",
    "squad-json": "SQuAD question answering, the JSON as published (v1.1 or v2.0)",
    "glue-tsv": "GLUE task data as published (the TSVs of glue_data/<task>, or MRPC's source files)",
    "hf-parquet": "a Hugging Face Hub dataset repository's Parquet files",
}

NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
ALIAS_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/-]*$")
MAX_NAME = 128  # a name is a folder and a file name in the cache (artifacts/<name>, meta/<name>.json)
_HEX = {"sha256": 64, "md5": 32, "crc32c": 8}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _check_url(url: str) -> str:
    scheme = urlsplit(url).scheme
    if scheme not in SCHEMES:
        raise ValueError(f"URL {url!r} has unsupported scheme {scheme or '(none)'!r}; "
                         f"use one of {', '.join(SCHEMES)}")
    return url


def _check_path(what: str, path: str) -> str:
    why = relpath.problem(path)
    if why:
        shown = path if len(path) <= 60 else f"{path[:40]}...{path[-12:]}"
        raise ValueError(f"{what} {shown!r} {why}")
    return path


def _check_hex(kind: str, value: str | None) -> str | None:
    if value is None:
        return None
    value = value.strip().lower()
    if len(value) != _HEX[kind] or not re.fullmatch(r"[0-9a-f]+", value):
        raise ValueError(f"{kind} must be {_HEX[kind]} hex digits, got {value!r} ({len(value)} characters)")
    return value


class Architecture(_Strict):
    """Shape of a BERT checkpoint, enough to build its config without the files."""

    layers: int = Field(gt=0)
    hidden: int = Field(gt=0)
    heads: int = Field(gt=0)
    intermediate: int = Field(gt=0)
    vocab_size: int = Field(gt=0)
    max_positions: int = Field(default=512, gt=0)
    type_vocab: int = Field(default=2, gt=0)
    cased: bool

    @model_validator(mode="after")
    def _heads_divide_hidden(self) -> Architecture:
        if self.hidden % self.heads:
            raise ValueError(f"hidden {self.hidden} is not a multiple of heads {self.heads}")
        return self

    def short(self) -> str:
        case = "cased" if self.cased else "uncased"
        return f"L{self.layers} H{self.hidden} A{self.heads} V{self.vocab_size} {case}"


class Hashes(_Strict):
    sha256: str | None = None
    md5: str | None = None
    crc32c: str | None = None

    @field_validator("sha256", "md5", "crc32c")
    @classmethod
    def _hex(cls, value: str | None, info) -> str | None:
        return _check_hex(info.field_name, value)


class Member(_Strict):
    """A published hash of one file inside an archive, checked after extraction."""

    sha256: str
    size: int | None = Field(default=None, ge=0, description="exact bytes; verified when given")

    @field_validator("sha256")
    @classmethod
    def _hex(cls, value: str) -> str:
        return _check_hex("sha256", value)  # type: ignore[return-value]


class FileSpec(Hashes):
    """One file of an artifact: its path in the artifact view and its mirrors, tried in order."""

    path: str
    urls: list[str] = Field(min_length=1)
    size: int | None = Field(default=None, ge=0, description="exact bytes; verified when given")
    approx_size: int | None = Field(default=None, gt=0, description="bytes, about; shown, never verified")
    archive: Literal["zip", "tar.gz"] | None = None
    archive_root: str | None = Field(default=None, description="folder inside the archive to keep")
    optional: bool = Field(default=False, description="pulled only when named by --include")
    members: dict[str, Member] = Field(default={}, description="path in the view -> published hash")

    @field_validator("urls")
    @classmethod
    def _schemes(cls, urls: list[str]) -> list[str]:
        return [_check_url(u) for u in urls]

    @field_validator("path")
    @classmethod
    def _relative(cls, path: str) -> str:
        return _check_path("file path", path)

    @field_validator("members")
    @classmethod
    def _member_paths(cls, members: dict[str, Member]) -> dict[str, Member]:
        for path in members:
            _check_path("member path", path)
        return members

    @model_validator(mode="after")
    def _consistent(self) -> FileSpec:
        if self.members and self.archive is None:
            raise ValueError("members lists files inside an archive; this file has no archive type")
        if self.size is not None and self.approx_size is not None:
            raise ValueError("give size (exact, verified) or approx_size (shown only), not both")
        return self

    @field_validator("archive_root")
    @classmethod
    def _root(cls, root: str | None) -> str | None:
        return None if root is None else _check_path("archive_root", root.strip("/"))

    @property
    def pinned(self) -> bool:
        return self.sha256 is not None

    @property
    def verified(self) -> bool:
        """Held to a published hash: its own, or its members'."""
        return self.sha256 is not None or bool(self.members)

    @property
    def shown_size(self) -> tuple[int | None, bool]:
        """(bytes, exact): the exact size, else the approximate one, else (None, False)."""
        return (self.size, True) if self.size is not None else (self.approx_size, False)


class ShardSeries(_Strict):
    """A numbered family of files: `{i}` in `path` and `urls` runs from `first` to `last`."""

    path: str
    urls: list[str] = Field(min_length=1)
    first: int = Field(ge=0)
    last: int = Field(ge=0)
    approx_size: int | None = Field(default=None, gt=0, description="bytes of each shard, about; shown only")

    @field_validator("urls")
    @classmethod
    def _schemes(cls, urls: list[str]) -> list[str]:
        return [_check_url(u) for u in urls]

    @model_validator(mode="after")
    def _placeholder(self) -> ShardSeries:
        if "{i}" not in self.path or any("{i}" not in u for u in self.urls):
            raise ValueError("a shard series needs '{i}' in its path and in every URL")
        if self.last < self.first:
            raise ValueError(f"last ({self.last}) is below first ({self.first})")
        # Only the digits differ between the expanded paths, and the last number is the longest.
        _check_path("shard path", self.path.replace("{i}", str(self.last)))
        return self

    def expand(self) -> list[FileSpec]:
        """The series' files: copies of one validated file, since only the digits differ (and the
        series checked its longest path); validating each would cost seconds for 40,000 shards."""
        first = FileSpec(path=self.path.replace("{i}", str(self.first)),
                         urls=[u.replace("{i}", str(self.first)) for u in self.urls],
                         approx_size=self.approx_size)
        return [
            first.model_copy(update={"path": self.path.replace("{i}", str(i)),
                                     "urls": [u.replace("{i}", str(i)) for u in self.urls]})
            for i in range(self.first, self.last + 1)
        ]


def _check_paths_apart(paths: list[str]) -> None:
    """No path twice, and none that another needs as its folder ('a' and 'a/b'). Linear in the paths."""
    duplicates = sorted(p for p, n in Counter(paths).items() if n > 1)
    if duplicates:
        raise ValueError(f"file paths listed twice: {_some(duplicates)}")
    listed = set(paths)
    clashes = sorted({f"{p} (a file, and the folder of {path})" for path in paths
                      for p in _folders(path) if p in listed})
    if clashes:
        raise ValueError(f"file paths that are also folders of other paths: {_some(clashes)}")


def _folders(path: str) -> list[str]:
    parts = path.split("/")
    return ["/".join(parts[:n]) for n in range(1, len(parts))]


def _some(items: list[str], shown: int = 5) -> str:
    return ", ".join(items[:shown]) + (f" and {len(items) - shown} more" if len(items) > shown else "")


class Artifact(_Strict):
    name: str
    aliases: list[str] = []
    kind: Literal["checkpoint", "dataset"]
    format: str
    description: str = ""
    publisher: str | None = None
    homepage: str | None = None
    license: str | None = None
    architecture: Architecture | None = None
    vocab_from: str | None = Field(default=None, description="artifact whose vocab.txt this one uses")
    same_weights_as: list[str] = []
    files: list[FileSpec] = []
    shards: list[ShardSeries] = Field(default=[], exclude=True)

    @field_validator("name")
    @classmethod
    def _name(cls, name: str) -> str:
        if len(name) > MAX_NAME:
            raise ValueError(f"name {name[:24]!r}... is {len(name)} characters long; "
                             f"at most {MAX_NAME} are allowed")
        if not NAME_RE.match(name):
            raise ValueError(f"name {name!r} may hold only letters, digits, '.', '_' and '-'")
        return name

    @field_validator("aliases")
    @classmethod
    def _aliases(cls, aliases: list[str]) -> list[str]:
        for alias in aliases:
            if len(alias) > MAX_NAME:
                raise ValueError(f"alias {alias[:24]!r}... is {len(alias)} characters long; "
                                 f"at most {MAX_NAME} are allowed")
            if not ALIAS_RE.match(alias):
                raise ValueError(f"alias {alias!r} may hold only letters, digits, '.', '_', '-' and '/'")
        return aliases

    @field_validator("format")
    @classmethod
    def _format(cls, fmt: str) -> str:
        if fmt not in FORMATS:
            raise ValueError(f"unknown format {fmt!r}; expected one of {', '.join(FORMATS)}")
        return fmt

    @model_validator(mode="after")
    def _expand_and_check(self) -> Artifact:
        if self.shards:
            files = [*self.files, *(f for series in self.shards for f in series.expand())]
            object.__setattr__(self, "files", files)
            object.__setattr__(self, "shards", [])
        if not self.files:
            raise ValueError("an artifact needs at least one entry in files or shards")
        # Members land in the view beside the plain files: no path may be claimed twice.
        _check_paths_apart([f.path for f in self.files] + [m for f in self.files for m in f.members])
        if self.kind == "checkpoint" and self.architecture is None and self.format != "bundle":
            raise ValueError("a checkpoint needs an architecture table")
        return self

    @property
    def known_size(self) -> int | None:
        size, exact = self.shown_size
        return size if exact else None

    @property
    def shown_size(self) -> tuple[int | None, bool]:
        """(bytes, exact) of what a plain pull fetches (the files that are not optional): exact when
        each has an exact size, approximate when each has at least an approximate one, else None."""
        return total_size(f for f in self.files if not f.optional)

    @property
    def pinned(self) -> str:
        """'all', 'some' or 'none' of the files are held to a published hash (theirs or their members')."""
        count = sum(f.verified for f in self.files)
        return "all" if count == len(self.files) else "some" if count else "none"


def total_size(files: Iterable[FileSpec]) -> tuple[int | None, bool]:
    """(bytes, exact) of these files together; (None, False) when one has no size at all."""
    sizes = [f.shown_size for f in files]
    if not sizes or any(size is None for size, _ in sizes):
        return None, False
    return sum(size for size, _ in sizes), all(exact for _, exact in sizes)  # type: ignore[misc]


class PinFile(Hashes):
    """What was learned about one file after its artifact was declared: hashes, exact size and, for a
    Hub file moved to another commit, its mirrors."""

    path: str
    size: int | None = Field(default=None, ge=0)
    urls: list[str] | None = Field(default=None, min_length=1)

    @field_validator("urls")
    @classmethod
    def _schemes(cls, urls: list[str] | None) -> list[str] | None:
        return None if urls is None else [_check_url(u) for u in urls]

    @field_validator("path")
    @classmethod
    def _relative(cls, path: str) -> str:
        return _check_path("file path", path)


class Pin(_Strict):
    """`[[pin]]`: what `bertvault pin` learned about an artifact declared elsewhere (a built-in, say),
    laid over that entry when the registry loads, so the entry itself is never copied."""

    name: str
    note: str = ""
    files: list[PinFile] = Field(min_length=1)

    @field_validator("name")
    @classmethod
    def _name(cls, name: str) -> str:
        if len(name) > MAX_NAME or not ALIAS_RE.match(name):
            raise ValueError(f"{name[:40]!r} is not an artifact name or alias")
        return name

    @model_validator(mode="after")
    def _once_each(self) -> Pin:
        _check_paths_apart([f.path for f in self.files])
        return self

    def apply(self, artifact: Artifact) -> Artifact:
        """The artifact with the learned facts in place; raises ValueError for a path it lacks."""
        learned = {f.path: f for f in self.files}
        unknown = sorted(set(learned) - {f.path for f in artifact.files})
        if unknown:
            raise ValueError(f"pins files that {artifact.name} does not have: {_some(unknown)}")
        return artifact.model_copy(update={"files": [_laid_over(spec, learned.get(spec.path))
                                                     for spec in artifact.files]})


def _laid_over(spec: FileSpec, learned: PinFile | None) -> FileSpec:
    if learned is None:
        return spec
    data = spec.model_dump(exclude_none=True)
    new = learned.model_dump(exclude_none=True, exclude={"path"})
    if new.get("sha256", spec.sha256) != spec.sha256:  # other bytes: the old digests describe nothing
        data.pop("md5", None)
        data.pop("crc32c", None)
    if "size" in new:
        data.pop("approx_size", None)
    return FileSpec.model_validate({**data, **new})

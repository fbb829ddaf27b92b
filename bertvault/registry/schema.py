"""The manifest schema: what a published artifact is, where its files live, what hashes pin them.

A manifest file is TOML with one `[[artifact]]` table per artifact. Files are listed one by one
(`[[artifact.files]]`) or, for numbered shard families, as a series (`[[artifact.shards]]`) that
is expanded into files when the manifest is loaded.
"""

from __future__ import annotations

import re
from collections import Counter
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


class FileSpec(Hashes):
    """One file of an artifact: its path in the artifact view and its mirrors, tried in order."""

    path: str
    urls: list[str] = Field(min_length=1)
    size: int | None = Field(default=None, ge=0, description="exact bytes; verified when given")
    archive: Literal["zip", "tar.gz"] | None = None
    archive_root: str | None = Field(default=None, description="folder inside the archive to keep")
    optional: bool = Field(default=False, description="pulled only when named by --include")

    @field_validator("urls")
    @classmethod
    def _schemes(cls, urls: list[str]) -> list[str]:
        return [_check_url(u) for u in urls]

    @field_validator("path")
    @classmethod
    def _relative(cls, path: str) -> str:
        return _check_path("file path", path)

    @field_validator("archive_root")
    @classmethod
    def _root(cls, root: str | None) -> str | None:
        return None if root is None else _check_path("archive_root", root.strip("/"))

    @property
    def pinned(self) -> bool:
        return self.sha256 is not None


class ShardSeries(_Strict):
    """A numbered family of files: `{i}` in `path` and `urls` runs from `first` to `last`."""

    path: str
    urls: list[str] = Field(min_length=1)
    first: int = Field(ge=0)
    last: int = Field(ge=0)

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
                         urls=[u.replace("{i}", str(self.first)) for u in self.urls])
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
        _check_paths_apart([f.path for f in self.files])
        if self.kind == "checkpoint" and self.architecture is None and self.format != "bundle":
            raise ValueError("a checkpoint needs an architecture table")
        return self

    @property
    def known_size(self) -> int | None:
        sizes = [f.size for f in self.files if not f.optional]
        return sum(sizes) if sizes and all(s is not None for s in sizes) else None  # type: ignore[misc]

    @property
    def pinned(self) -> str:
        """'all', 'some' or 'none' of the files have a sha256."""
        count = sum(f.pinned for f in self.files)
        return "all" if count == len(self.files) else "some" if count else "none"

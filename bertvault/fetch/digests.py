"""Digests: what servers and manifests claim about a file's bytes, and the hashers that check them.

Server headers understood (each parser returns {algorithm: lowercase hex}):
  Content-MD5                     base64 MD5 of the whole body (ignored on 206: there it covers the range)
  x-ms-blob-content-md5           Azure Blob: base64 MD5 of the whole blob, also on ranged reads
  x-goog-hash                     GCS: crc32c=<b64>,md5=<b64>
  X-Linked-Etag                   Hugging Face Hub: sha256 of an LFS file
  Digest (RFC 3230)               SHA-256=<b64>, SHA-512=<b64>, MD5=<b64>
  Repr-Digest (RFC 9530)          sha-256=:<b64>:, ...
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from bertvault.io.hashing import HASHERS

HEX_LENGTH = {"sha256": 64, "sha512": 128, "md5": 32, "crc32c": 8}


def can_compute(algo: str) -> bool:
    return algo in HASHERS


def _b64_hex(value: str, algo: str) -> dict[str, str]:
    try:
        raw = base64.b64decode(value.strip().strip('"').strip(":"), validate=True)
    except (binascii.Error, ValueError):
        return {}
    text = raw.hex()
    return {algo: text} if len(text) == HEX_LENGTH[algo] else {}


def _content_md5(value: str, partial: bool) -> dict[str, str]:
    return {} if partial else _b64_hex(value, "md5")


def _azure_md5(value: str, partial: bool) -> dict[str, str]:
    return _b64_hex(value, "md5")


def _goog_hash(value: str, partial: bool) -> dict[str, str]:
    found: dict[str, str] = {}
    for item in value.split(","):
        algo, _, encoded = item.strip().partition("=")
        if algo.lower() in ("crc32c", "md5"):
            found.update(_b64_hex(encoded, algo.lower()))
    return found


def _linked_etag(value: str, partial: bool) -> dict[str, str]:
    text = value.strip().removeprefix("W/").strip('"').lower()
    return {"sha256": text} if re.fullmatch(r"[0-9a-f]{64}", text) else {}


_RFC_NAMES = {"sha-256": "sha256", "sha-512": "sha512", "md5": "md5", "sha256": "sha256", "sha512": "sha512"}


def _digest(value: str, partial: bool) -> dict[str, str]:
    found: dict[str, str] = {}
    for item in value.split(","):
        name, _, encoded = item.strip().partition("=")
        algo = _RFC_NAMES.get(name.strip().lower())
        if algo:
            found.update(_b64_hex(encoded, algo))
    return found


PARSERS: dict[str, Callable[[str, bool], dict[str, str]]] = {
    "content-md5": _content_md5,
    "x-ms-blob-content-md5": _azure_md5,
    "x-goog-hash": _goog_hash,
    "x-linked-etag": _linked_etag,
    "digest": _digest,
    "repr-digest": _digest,
}


def from_headers(headers: Mapping[str, str], *, partial: bool = False) -> dict[str, tuple[str, str]]:
    """{algo: (hex, header name)} for every digest the headers state about the whole file."""
    found: dict[str, tuple[str, str]] = {}
    lowered = {k.lower(): v for k, v in headers.items()}
    for header, parse in PARSERS.items():
        if header in lowered:
            for algo, hexdigest in parse(lowered[header], partial).items():
                found.setdefault(algo, (hexdigest, header))
    return found


@dataclass(frozen=True)
class Claim:
    """One statement about the file: `algo` is `value`, according to `source`."""

    algo: str  # a HASHERS key, or "size"
    value: str
    source: str

    def describe(self) -> str:
        return f"{self.algo} {self.value} ({self.source})"


def check(claims: list[Claim], actual: Mapping[str, str]) -> list[str]:
    """Every claim the actual values contradict, as 'algo expected X (source), got Y'."""
    return [
        f"{c.algo} expected {c.value} ({c.source}), got {actual[c.algo]}"
        for c in claims
        if c.algo in actual and actual[c.algo] != c.value
    ]

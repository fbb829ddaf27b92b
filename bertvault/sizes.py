"""Byte sizes as people write them, and as bertvault prints them: one rule for every option.

Units say which base they mean: `KB`, `MB`, `GB`, `TB` are decimal (10^3 steps, as disk vendors
and the Hugging Face Hub count), `KiB`, `MiB`, `GiB`, `TiB` binary (2^10 steps). A bare letter
(`K`, `M`, `G`, `T`) is binary, as in `dd`, `curl --limit-rate` and GNU tools. A bare number is
bytes. So `--max-shard-size 8MB` is 8,000,000 bytes and `--chunk-size 8MiB` (or `8M`) 8,388,608.
Printed sizes are decimal with one decimal place (`1.3 GB`), like `list`, `pull` and the Hub.
"""

from __future__ import annotations

import re

from bertvault.errors import UsageError

_UNITS = {
    "": 1, "b": 1,
    "kb": 10**3, "mb": 10**6, "gb": 10**9, "tb": 10**12,
    "kib": 2**10, "mib": 2**20, "gib": 2**30, "tib": 2**40,
    "k": 2**10, "m": 2**20, "g": 2**30, "t": 2**40,
}
_SIZE = re.compile(r"\s*(\d+(?:\.\d+)?)\s*([A-Za-z]*)\s*")


def parse_size(text: str, option: str = "size") -> int:
    """'8MB' -> 8000000, '8MiB' or '8M' -> 8388608, '512' -> 512. Raises UsageError naming `option`."""
    match = _SIZE.fullmatch(text)
    unit = match.group(2).lower() if match else ""
    if not match or unit not in _UNITS:
        raise UsageError(f"{option} {text!r}: expected a size such as 2GB or 64MiB (KB, MB, GB count in "
                         "powers of 1000; KiB, MiB, GiB, or K, M, G, in powers of 1024)")
    return int(float(match.group(1)) * _UNITS[unit])


def format_size(n: float | None) -> str:
    """1340000000 -> '1.3 GB'; None (unknown) -> '?'."""
    if n is None:
        return "?"
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if abs(n) < 1000 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return "?"

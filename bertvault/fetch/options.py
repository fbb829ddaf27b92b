"""Knobs of a pull, with defaults suited to multi-GB checkpoints over a CDN."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

MiB = 1 << 20


@dataclass(frozen=True)
class PullOptions:
    include: tuple[str, ...] = ()
    to: Path | None = None
    offline: bool = False
    jobs: int = 4                    # files at once
    connections: int = 8             # byte ranges at once, per file
    chunk_size: int | None = None    # bytes per ranged request; None: chunk_for() picks by file size
    buffer_size: int = 1 * MiB       # one socket read / one write
    retries: int = 6                 # consecutive failures without progress, per connection
    retry_wait: float = 0.5          # backoff factor: waits of ~0, 1, 2, 4 ... seconds, plus jitter
    max_retry_wait: float = 60.0
    max_retry_after: float = 300.0   # a longer Retry-After gives up on that mirror
    connect_timeout: float = 15.0
    stall_timeout: float = 30.0      # no byte for this long: the connection is dropped and retried
    rounds: int = 5                  # re-probes of one mirror (file changed, range ignored, URL expired)
    commit_interval: float = 0.1     # seconds between journal lines (what a kill -9 can lose)
    sync_interval: float = 5.0       # seconds between data syncs (what a power loss can lose)
    fsync: bool = True
    max_extract_ratio: float = 100.0  # extracted bytes per archive byte, against zip bombs
    hash_block: int = 4 * MiB         # bytes read back per step, for what the hasher did not get in memory
    hash_window: int = 128 * MiB      # received bytes the hasher may hold ahead of the hashed prefix
    direct_io: bool = True           # write with O_DIRECT where the filesystem allows it

    def problems(self) -> list[str]:
        checks = {
            "--jobs must be at least 1": self.jobs >= 1,
            "--connections must be between 1 and 64": 1 <= self.connections <= 64,
            "--chunk-size must be at least 4K": self.chunk_size is None or self.chunk_size >= 4096,
            "--retries must be 0 or more": self.retries >= 0,
            "--stall-timeout must be positive": self.stall_timeout > 0,
        }
        return [message for message, ok in checks.items() if not ok]

    def chunk_for(self, size: int) -> int:
        """Enough requests to keep every connection busy to the end (8 a connection), few enough that
        per-request latency stays small, and small enough that hashing keeps up with the prefix."""
        if self.chunk_size is not None:
            return self.chunk_size
        return min(max(size // (self.connections * 8), 8 * MiB), 64 * MiB)

"""Who owns a temporary thing in the cache: a tag of host and pid, so leftovers of dead processes can be
recognised (and adopted or removed) without trusting a lock."""

from __future__ import annotations

import os
import re
import secrets
import socket

HOST = re.sub(r"[^A-Za-z0-9.-]", "_", socket.gethostname()) or "localhost"


def new_tag() -> str:
    """host@pid@random: unique per process and call, parseable by `owner_of`."""
    return f"{HOST}@{os.getpid()}@{secrets.token_hex(4)}"


def owner_of(tag: str) -> tuple[str, int] | None:
    parts = tag.split("@")
    if len(parts) < 3 or not parts[-2].isdigit():
        return None
    return parts[-3], int(parts[-2])


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def is_stale(tag: str) -> bool:
    """True when the tag names a process of this host that no longer runs. Other hosts: never stale
    here (their pids mean nothing to us); `cache gc` removes those by age."""
    owner = owner_of(tag)
    return owner is not None and owner[0] == HOST and not pid_alive(owner[1])


def in_use(tag: str) -> bool:
    """True when the tag names a live process of this host."""
    owner = owner_of(tag)
    return owner is not None and owner[0] == HOST and pid_alive(owner[1])

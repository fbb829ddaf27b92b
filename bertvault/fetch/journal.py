"""Whether a partial download's journal (cache/journal.py) holds bytes of the remote file as it is now.

The journal's header records the validators (URL, size, ETag, Last-Modified, version); a resume is
allowed only when the remote still shows the same ones, and a server that gives none cannot prove
its file unchanged.
"""

from __future__ import annotations

from bertvault.fetch.remote import Remote

VERSION = 2


def validators(remote: Remote) -> dict:
    """What identifies the remote's bytes, and whether they can be asked for in ranges (else a
    partial download of it can never be resumed)."""
    return {"v": VERSION, "url": remote.url, "size": remote.size, "etag": remote.etag,
            "last_modified": remote.last_modified, "version": remote.version,
            "ranges": remote.ranges and remote.size is not None}


def resumable(header: dict, remote: Remote) -> str | None:
    """None when the journal's bytes belong to this remote; else why they do not."""
    now = validators(remote)
    if header.get("v") != VERSION or header.get("url") != now["url"]:
        return "the journal is for another URL or an older bertvault"
    if now["size"] is None or header.get("size") != now["size"]:
        return f"size changed ({header.get('size')} → {now['size']})"
    strong = [k for k in ("version", "etag", "last_modified") if now[k]]
    if not strong:
        return "the server gives no ETag, Last-Modified or version to prove the file is unchanged"
    for field in strong:
        if header.get(field) != now[field]:
            return f"{field} changed ({header.get(field)} → {now[field]})"
    return None


def changed(header: dict, remote: Remote) -> str | None:
    """How `remote` differs from what `header` recorded of it (size, version, ETag, Last-Modified), or
    None: unlike `resumable`, a server that gives no validators is not called changed."""
    now = validators(remote)
    for field in ("size", "version", "etag", "last_modified"):
        if header.get(field) != now[field]:
            return f"{field} changed ({header.get(field)} → {now[field]})"
    return None



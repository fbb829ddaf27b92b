"""Published hashes of the files inside an archive (`members`), checked once it is extracted.

Google published no hash of its BERT zips, but NVIDIA's downloader holds the files inside them to
sha256 values. An archive whose own bytes nobody pinned is still verified when every file it
extracts matches such a hash: its trust is then "published (members)". Files it extracts that no
hash covers leave it "partly published (members)", named in the pull's events. A member that
differs, or that the archive lacks, is a ChecksumMismatch and nothing is installed.
"""

from __future__ import annotations

from dataclasses import dataclass

from bertvault.errors import ChecksumMismatch
from bertvault.registry.schema import FileSpec

VERIFIED = "published (members)"
PARTLY = "partly published (members)"


class MemberMismatch(ChecksumMismatch):
    """Extracted files that contradict the published member hashes of archive `path`."""

    def __init__(self, problems: list[str], path: str) -> None:
        super().__init__(problems)
        self.path = path


@dataclass(frozen=True)
class Verdict:
    trust: str            # VERIFIED or PARTLY
    unlisted: list[str]   # extracted files no published hash covers


def problems(artifact: str, spec: FileSpec, extracted: dict[str, dict]) -> list[str]:
    """Each listed member the extracted files {path: {size, sha256}} lack or contradict, one line each."""
    found = []
    for rel, want in sorted(spec.members.items()):
        got = extracted.get(rel)
        where = f"{artifact}/{rel} (from {spec.path})"
        if got is None:
            found.append(f"{where}: listed with a published sha256 but not in the archive")
        elif got.get("sha256") != want.sha256:
            found.append(f"{where}: sha256 expected {want.sha256} (published member hash), "
                         f"got {got.get('sha256')}")
        elif want.size is not None and got.get("size") != want.size:
            found.append(f"{where}: size expected {want.size} (published), got {got.get('size')}")
    return found


def check(artifact: str, spec: FileSpec, extracted: dict[str, dict]) -> Verdict | None:
    """The trust the archive earns from its members (None when the manifest lists none); raises
    MemberMismatch naming every member that differs or is missing."""
    if not spec.members:
        return None
    wrong = problems(artifact, spec, extracted)
    if wrong:
        wrong[-1] += ("; nothing was installed and the archive was moved to quarantine: pull again, and "
                      "if the same member differs again, the archive changed at its source (report it, so "
                      "the manifest can be corrected)")
        raise MemberMismatch(wrong, spec.path)
    unlisted = sorted(set(extracted) - set(spec.members))
    return Verdict(PARTLY if unlisted else VERIFIED, unlisted)

"""hf:// addresses, read exactly as huggingface_hub reads them: hf://[TYPE/]ORG/REPO[@REVISION][/PATH].

TYPE is `datasets/` or `spaces/` (models have none); a revision may be a branch, a tag, a commit,
`refs/pr/N`, or hold `%2F` for a slash; a path may hold `@` (`logo@2x.png`). Pin a file to a commit
with `hf://org/repo@<commit>/file`. huggingface_hub's own parser (`parse_hf_uri`) does the parsing;
this module only keeps its answers to the repository types bertvault reads and writes.
"""

from __future__ import annotations

from dataclasses import dataclass

KINDS = ("model", "dataset", "space")
FORM = "hf://[datasets/|spaces/]ORG/REPO[@REVISION][/PATH]"


@dataclass(frozen=True)
class HfUri:
    repo_id: str  # ORG/REPO
    repo_type: str  # model, dataset or space
    revision: str | None  # None: the default branch
    path: str  # inside the repository ("" for the repository itself)


def parse(url: str) -> HfUri:
    """Raises ValueError (one line, saying the expected form) for anything else."""
    from huggingface_hub import parse_hf_uri
    from huggingface_hub.errors import HfUriError

    if not url.startswith("hf://"):
        raise ValueError(f"{url!r} is not an hf:// address; expected {FORM}")
    try:
        uri = parse_hf_uri(url)
    except (HfUriError, ValueError) as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        reason = reason.removeprefix(f"Invalid HF URI {url!r}. ")
        raise ValueError(f"{url!r}: {reason} Expected {FORM}") from None
    if uri.type not in KINDS:
        raise ValueError(f"{url!r} names a {uri.type}; bertvault reads and writes model, dataset and space "
                         "repositories")
    return HfUri(uri.id, uri.type, uri.revision, uri.path_in_repo)

"""`[[pin]]` tables laid over built-in entries, and the schema of member hashes and approximate sizes."""

from __future__ import annotations

from pathlib import Path

import pytest

from bertvault.errors import ManifestError
from bertvault.registry import load_registry
from bertvault.registry.loader import read_manifest

ZIP = "multi_cased_L-12_H-768_A-12.zip"
SHA = "ab" * 32


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def pin(name: str, path: str, extra: str = "") -> str:
    return f'[[pin]]\nname = "{name}"\n[[pin.files]]\npath = "{path}"\nsha256 = "{SHA}"\n{extra}\n'


def test_a_pin_adds_to_the_builtin_without_replacing_it(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("BERTVAULT_MANIFESTS", str(write(tmp_path / "p.toml", pin("multi_cased", ZIP))))
    registry = load_registry()
    entry = registry.entry("multi_cased")
    spec = entry.artifact.files[0]
    assert entry.builtin and "multi_cased_L-12_H-768_A-12" not in registry.overridden
    assert registry.pinned_by == {"multi_cased_L-12_H-768_A-12": [tmp_path / "p.toml"]}
    # Learned hash added; the published size, mirrors, member hashes and aliases stay.
    assert (spec.sha256, spec.size, len(spec.urls), len(spec.members)) == (SHA, 662903077, 2, 5)
    assert "multi_cased" in registry


def test_a_pinned_size_replaces_the_approximate_one(tmp_path, monkeypatch) -> None:
    text = pin("bert-tiny", "uncased_L-2_H-128_A-2.zip", "size = 17000000")
    monkeypatch.setenv("BERTVAULT_MANIFESTS", str(write(tmp_path / "p.toml", text)))
    artifact = load_registry().get("bert-tiny")
    assert (artifact.files[0].size, artifact.files[0].approx_size, artifact.shown_size) == \
        (17000000, None, (17000000, True))


@pytest.mark.parametrize(("text", "message"), [
    (pin("no-such-bert", "x.bin"), r"pin of unknown artifact 'no-such-bert'"),
    (pin("multi_cased", "other.zip"), r"pin of 'multi_cased_L-12_H-768_A-12': pins files that "
                                      r"multi_cased_L-12_H-768_A-12 does not have: other.zip"),
    (pin("multi_cased", "../x"), r"file path '../x' climbs out of its folder"),
    (pin("multi_cased", ZIP).replace(SHA, "12345"), r"sha256 must be 64 hex digits"),
])
def test_bad_pins_are_refused_with_where_and_why(text: str, message: str, tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("BERTVAULT_MANIFESTS", str(write(tmp_path / "p.toml", text)))
    with pytest.raises(ManifestError, match=message):
        load_registry()


def test_one_file_pinned_by_two_manifests_is_refused(tmp_path, monkeypatch) -> None:
    a = write(tmp_path / "a.toml", pin("multi_cased", ZIP))
    b = write(tmp_path / "b.toml", pin("multi_cased_L-12_H-768_A-12", ZIP))
    monkeypatch.setenv("BERTVAULT_MANIFESTS", f"{a}:{b}")
    with pytest.raises(ManifestError, match=r"multi_cased_L-12_H-768_A-12/multi_cased_L-12_H-768_A-12.zip is "
                                            r"pinned in both .*a\.toml and .*b\.toml"):
        load_registry()


ARCHIVE = """
[[artifact]]
name = "mine"
kind = "dataset"
format = "text"

[[artifact.files]]
path = "{path}"
urls = ["https://example.org/a.zip"]
{extra}
"""


@pytest.mark.parametrize(("path", "extra", "message"), [
    ("a.zip", '[artifact.files.members]\n"x.txt" = {{ sha256 = "{sha}" }}',
     "members lists files inside an archive; this file has no archive type"),
    ("a.zip", 'archive = "zip"\n[artifact.files.members]\n"../x.txt" = {{ sha256 = "{sha}" }}',
     "member path '../x.txt' climbs out of its folder"),
    ("a.zip", 'archive = "zip"\n[artifact.files.members]\n"x.txt" = {{ sha256 = "xyz" }}',
     "sha256 must be 64 hex digits"),
    ("a.zip", "size = 10\napprox_size = 12",
     "give size (exact, verified) or approx_size (shown only), not both"),
    ("a.zip", "approx_size = 0", "greater than 0"),
    ("x.txt", 'archive = "zip"\n[artifact.files.members]\n"x.txt" = {{ sha256 = "{sha}" }}',
     "file paths listed twice: x.txt"),
])
def test_member_hashes_and_sizes_are_validated(path: str, extra: str, message: str, tmp_path) -> None:
    file = write(tmp_path / "m.toml", ARCHIVE.format(path=path, extra=extra.format(sha=SHA)))
    with pytest.raises(ManifestError, match=message.replace("(", r"\(").replace(")", r"\)")):
        read_manifest(file)

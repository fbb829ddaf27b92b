"""User manifests: overrides, $BERTVAULT_MANIFESTS, the XDG config folder and `bertvault add`."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from bertvault import paths
from bertvault.errors import ManifestError
from bertvault.registry import load_registry
from bertvault.registry.user import add_artifact, build_table

MY_BERT = """
[[artifact]]
name = "my-bert"
aliases = ["mine"]
kind = "checkpoint"
format = "hf-safetensors"
architecture = { layers = 2, hidden = 32, heads = 4, intermediate = 64, vocab_size = 100, cased = false }

[[artifact.files]]
path = "model.safetensors"
urls = ["file:///srv/models/model.safetensors", "https://mirror.example/model.safetensors"]
sha256 = "AB%s"
""" % ("0" * 62)


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_manifest_from_env_var_file_and_folder(tmp_path, monkeypatch) -> None:
    file = write(tmp_path / "one.toml", MY_BERT)
    folder = tmp_path / "more"
    other = MY_BERT.replace("my-bert", "other-bert").replace('"mine"', '"theirs"')
    write(folder / "nested" / "two.toml", other)
    monkeypatch.setenv("BERTVAULT_MANIFESTS", f"{file}:{folder}")
    registry = load_registry()
    assert registry.get("mine").name == "my-bert"
    assert registry.get("theirs").name == "other-bert"
    assert registry.get("my-bert").files[0].sha256 == "ab" + "0" * 62  # normalised to lower case
    assert not registry.entry("my-bert").builtin


def test_config_folder_is_read_with_xdg() -> None:
    write(paths.user_manifests_dir() / "x.toml", MY_BERT)
    assert "my-bert" in load_registry()


def test_user_entry_overrides_builtin(tmp_path, monkeypatch) -> None:
    override = MY_BERT.replace('name = "my-bert"', 'name = "multi_cased_L-12_H-768_A-12"')
    monkeypatch.setenv("BERTVAULT_MANIFESTS", str(write(tmp_path / "o.toml", override)))
    registry = load_registry()
    assert registry.get("mine").name == "multi_cased_L-12_H-768_A-12"
    assert registry.get("multi_cased_L-12_H-768_A-12").files[0].urls[0] == "file:///srv/models/model.safetensors"
    assert "multi_cased_L-12_H-768_A-12" in registry.overridden
    # The built-in aliases went with the overridden entry.
    assert "multi_cased" not in registry


def test_duplicate_names_across_user_manifests(tmp_path, monkeypatch) -> None:
    a = write(tmp_path / "a.toml", MY_BERT)
    b = write(tmp_path / "b.toml", MY_BERT.replace('"mine"', '"other"'))
    monkeypatch.setenv("BERTVAULT_MANIFESTS", f"{a}:{b}")
    with pytest.raises(ManifestError, match=r"'my-bert' is declared twice: in .*a\.toml and .*b\.toml"):
        load_registry()


def test_alias_clash_with_builtin(tmp_path, monkeypatch) -> None:
    clashing = write(tmp_path / "a.toml", MY_BERT.replace('"mine"', '"multi_cased"'))
    monkeypatch.setenv("BERTVAULT_MANIFESTS", str(clashing))
    with pytest.raises(ManifestError, match=r"'multi_cased' names both"):
        load_registry()


def test_add_appends_a_valid_entry() -> None:
    table = build_table(
        "new-bert", ["https://a.example/x/model.safetensors", "https://b.example/y/model.safetensors",
                     "https://a.example/x/vocab.txt"],
        kind="checkpoint", fmt="hf-safetensors", sha256=[], aliases=["nb"], arch="2-32-4-100",
        vocab_from=None, description="test",
    )
    artifact = add_artifact(paths.default_user_manifest(), table)
    assert [f.path for f in artifact.files] == ["model.safetensors", "vocab.txt"]
    assert len(artifact.files[0].urls) == 2  # same basename: mirrors of one file
    assert load_registry().get("nb").architecture.intermediate == 128
    data = tomllib.loads(paths.default_user_manifest().read_text())
    assert [a["name"] for a in data["artifact"]] == ["new-bert"]


def test_add_refuses_invalid_and_leaves_file_untouched() -> None:
    target = write(paths.default_user_manifest(), MY_BERT)
    before = target.read_text()
    bad = build_table("x", ["ftp://example.org/model.bin"], kind="checkpoint", fmt="hf-pytorch",
                      sha256=["123"], aliases=[], arch="2-32-4", vocab_from=None, description="")
    with pytest.raises(ManifestError) as info:
        add_artifact(target, bad)
    message = str(info.value)
    assert "unsupported scheme 'ftp'" in message and "sha256 must be 64 hex digits" in message
    assert target.read_text() == before
    assert sorted(p.name for p in target.parent.iterdir()) == ["user.toml"]  # no temp file left behind


def test_relative_file_url_is_resolved_against_the_manifest(tmp_path, monkeypatch) -> None:
    relative = MY_BERT.replace("file:///srv/models/model.safetensors", "file:files/model.safetensors")
    manifest = write(tmp_path / "mirror" / "m.toml", relative)
    monkeypatch.setenv("BERTVAULT_MANIFESTS", str(manifest))
    url = load_registry().get("my-bert").files[0].urls[0]
    assert url == (tmp_path / "mirror" / "files" / "model.safetensors").as_uri()

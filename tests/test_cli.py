"""The registry commands as a user types them: output, exit codes, and one-line errors."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from bertvault import __version__
from bertvault.cli import app

runner = CliRunner()

GOOD = """
[[artifact]]
name = "my-bert"
kind = "checkpoint"
format = "hf-safetensors"
architecture = { layers = 2, hidden = 32, heads = 4, intermediate = 64, vocab_size = 100, cased = false }
[[artifact.files]]
path = "model.safetensors"
urls = ["file:///tmp/model.safetensors"]
"""

BAD_INPUTS = {
    "malformed TOML": ("[[artifact]]\nname = \n", r"invalid TOML: .*\(at line 2, column 8\)"),
    "schema error": (GOOD.replace("layers = 2", "layers = -1"),
                     r"artifact 'my-bert': architecture\.layers: Input should be greater than 0 \(got -1\)"),
    "missing field": (GOOD.replace('kind = "checkpoint"\n', ""),
                      r"artifact 'my-bert': kind: required field missing"),
    "unknown field": (GOOD.replace('kind =', 'colour = "red"\nkind ='), r"unknown field 'colour'"),
    "unsupported scheme": (GOOD.replace("file:///tmp", "ftp://example.org"), r"unsupported scheme 'ftp'"),
    "hash length": (GOOD.replace('urls =', 'sha256 = "abc"\nurls ='),
                    r"sha256 must be 64 hex digits, got 'abc'"),
    "hash alphabet": (GOOD.replace('urls =', f'md5 = "{"z" * 32}"\nurls ='), r"md5 must be 32 hex digits"),
    "unknown format": (GOOD.replace("hf-safetensors", "onnx"), r"unknown format 'onnx'"),
    "duplicate in file": (GOOD + GOOD, r"'my-bert' is declared twice"),
    "alias clash": (GOOD.replace('kind =', 'aliases = ["bert-tiny"]\nkind ='), r"'bert-tiny' names both"),
    "dangling reference": (GOOD.replace('kind =', 'vocab_from = "nope"\nkind ='),
                           r"refers to unknown artifact 'nope'"),
}


def invoke(*args: str):
    return runner.invoke(app, list(args))


def test_version() -> None:
    result = invoke("--version")
    assert result.exit_code == 0 and result.output.strip() == f"bertvault {__version__}"


def test_list_json_and_filters() -> None:
    rows = json.loads(invoke("list", "--json").output)
    assert len(rows) > 70 and {"name", "kind", "format", "architecture", "size", "size_is_exact", "pinned",
                               "cached"} <= set(rows[0])
    by_name = {r["name"]: r for r in rows}
    multi = by_name["multi_cased_L-12_H-768_A-12"]
    assert (multi["size"], multi["size_is_exact"]) == (662903077, True)
    large = by_name["bert-large-original"]
    assert large["size_is_exact"] is False and large["size"] > 0
    datasets = json.loads(invoke("list", "--kind", "dataset", "--json").output)
    glue = {f"glue-{t}" for t in ("cola", "sst2", "mrpc", "stsb", "qqp", "mnli", "qnli", "rte", "wnli", "ax")}
    benchmarks = {"squad-v1.1", "squad-v2.0", "squad", "squad_v2", "glue", *glue}
    assert {r["name"] for r in datasets} == {"azureml-wiki-512", "azureml-bert-data", *benchmarks}
    tf2 = json.loads(invoke("list", "--format", "tf2-checkpoint", "--json").output)
    assert len(tf2) == 12 and all(r["format"] == "tf2-checkpoint" for r in tf2)


def test_list_shows_a_size_for_every_builtin_marking_approximate_ones() -> None:
    lines = invoke("list").output.splitlines()[2:]
    size_at = invoke("list").output.splitlines()[1].index("size")
    sizes = {line.split()[0]: line[size_at:].split()[0] + " " + line[size_at:].split()[1] for line in lines}
    assert not [name for name, size in sizes.items() if size.startswith("?")]
    assert sizes["bert-base-uncased"] == "441.1 MB"   # every default file's size is published
    assert sizes["bert-large-original"] == "~670.0 MB"  # an estimate, marked as one


def test_list_table_marks_user_entries(tmp_path, monkeypatch) -> None:
    (tmp_path / "m.toml").write_text(GOOD)
    monkeypatch.setenv("BERTVAULT_MANIFESTS", str(tmp_path / "m.toml"))
    result = invoke("list")
    assert result.exit_code == 0
    assert "my-bert (user)" in result.output and "multi_cased_L-12_H-768_A-12" in result.output


def test_tables_in_a_pipe_are_plain_aligned_columns(tmp_path, monkeypatch) -> None:
    (tmp_path / "m.toml").write_text(GOOD)
    monkeypatch.setenv("BERTVAULT_MANIFESTS", str(tmp_path / "m.toml"))
    lines = invoke("list").output.splitlines()  # CliRunner's stdout is not a terminal
    assert lines[0].endswith(" artifacts")
    assert lines[1].split() == ["name", "kind", "format", "architecture", "size", "pinned", "cached"]
    assert not any(set(line) & set("│┃─━┏┗") for line in lines)
    kind_at = lines[1].index("kind")
    mine = next(line for line in lines if line.startswith("my-bert (user)"))
    assert mine[kind_at:].startswith("checkpoint")  # one row a line, columns aligned under their header


def test_info_json() -> None:
    data = json.loads(invoke("info", "bert-large-original", "--json").output)
    assert data["vocab_from"] == "bert-large-uncased"
    assert data["architecture"]["layers"] == 24
    assert data["files"][0]["pinned"] is False and data["pinned"] == "none"
    assert data["files"][0]["size_is_exact"] is False and data["files"][0]["shown_size"] == data["size"]
    pinned = json.loads(invoke("info", "bert-base-uncased", "--json").output)
    assert pinned["pinned"] == "all" and pinned["size_is_exact"] is True
    assert all(f["pinned"] and f["size"] == f["shown_size"] for f in pinned["files"])
    assert all("@86b5e0934494bd15c9632b12f734a8a67f723594/" in f["urls"][0] for f in pinned["files"])
    members = json.loads(invoke("info", "multi_cased", "--json").output)["files"][0]
    assert members["member_hashes"] == 5 and members["members"]["vocab.txt"]["sha256"].startswith("fe0fda7c")


def test_info_table_shows_mirrors_and_links() -> None:
    result = invoke("info", "multi_cased")
    assert result.exit_code == 0
    assert "bert-base-multilingual-cased" in result.output and "members pinned" in result.output
    zip_name = "multi_cased_L-12_H-768_A-12.zip "
    row = next(line for line in result.output.splitlines() if line.startswith(zip_name))
    assert re.split(r"\s{2,}", row)[:4] == ["multi_cased_L-12_H-768_A-12.zip", "662.9 MB", "members pinned",
                                            "zip, 5 member hashes"]
    assert "not pinned" in invoke("info", "wwm_cased_L-24_H-1024_A-16").output


def test_unknown_name_suggests() -> None:
    result = invoke("info", "multi_case")
    assert result.exit_code == 2
    assert result.output.strip() == (
        "error: unknown artifact 'multi_case'; did you mean 'multi_cased', 'multi_uncased'?"
    )


@pytest.mark.parametrize("case", sorted(BAD_INPUTS))
def test_bad_manifest_gives_one_line_and_exit_2(case: str, tmp_path, monkeypatch) -> None:
    text, pattern = BAD_INPUTS[case]
    bad = tmp_path / "bad.toml"
    bad.write_text(text)
    validated = invoke("manifest", "validate", str(bad))
    assert validated.exit_code == 2
    lines = validated.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and str(bad) in lines[0]
    assert __import__("re").search(pattern, lines[0]), lines[0]
    # The same file on the manifest path breaks every command the same way, without a traceback.
    monkeypatch.setenv("BERTVAULT_MANIFESTS", str(bad))
    listed = invoke("list")
    assert listed.exit_code == 2 and "Traceback" not in listed.output


def test_validate_good_file(tmp_path) -> None:
    (tmp_path / "good.toml").write_text(GOOD)
    result = invoke("manifest", "validate", str(tmp_path / "good.toml"))
    assert result.exit_code == 0 and "ok:" in result.output and "(1 artifacts)" in result.output


def test_bad_options_collected_in_one_error() -> None:
    result = invoke("list", "--kind", "model", "--format", "onnx")
    assert result.exit_code == 2
    assert "--kind must be checkpoint or dataset" in result.output
    assert "--format must be one of" in result.output


def test_add_then_info() -> None:
    added = invoke("add", "tiny", "https://example.org/a/model.safetensors", "--arch", "2-32-4-100-cased")
    assert added.exit_code == 0, added.output
    data = json.loads(invoke("info", "tiny", "--json").output)
    assert data["architecture"]["cased"] is True and data["files"][0]["path"] == "model.safetensors"
    again = invoke("add", "tiny", "https://example.org/a/model.safetensors", "--arch", "2-32-4")
    assert again.exit_code == 2 and "already declares 'tiny'" in again.output


def run_cli(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "bertvault", *args], capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, timeout=120)


def test_real_process_bad_input_exit_code(tmp_path) -> None:
    (tmp_path / "bad.toml").write_text(BAD_INPUTS["malformed TOML"][0])
    result = run_cli("list", env={"BERTVAULT_MANIFESTS": str(tmp_path / "bad.toml")})
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("error: ")
    assert "line 2, column 8" in result.stderr
    assert result.stdout == ""
    unknown = run_cli("info", "no-such-bert")
    assert unknown.returncode == 2 and "Traceback" not in unknown.stderr


def test_debug_shows_traceback() -> None:
    result = run_cli("--debug", "info", "no-such-bert")
    assert result.returncode != 0 and "Traceback" in result.stderr and "ManifestError" in result.stderr


def test_list_imports_no_heavy_library() -> None:
    code = (
        "import sys; from bertvault.cli import app; "
        "from typer.main import get_command; "
        "get_command(app).main(['list', '--json'], standalone_mode=False); "
        "heavy = [m for m in ('torch', 'tensorflow', 'transformers', 'safetensors', 'tokenizers', 'numpy', "
        "'ray') if m in sys.modules]; "
        "print('HEAVY', heavy, file=sys.stderr)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "HEAVY []" in result.stderr


def test_installed_wheel_finds_its_data(tmp_path) -> None:
    """A non-editable install carries manifests/ and converters/ inside the package."""
    repo = Path(__file__).resolve().parents[1]
    built = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
         "-w", str(tmp_path / "dist"), str(repo)],
        capture_output=True, text=True, timeout=300,
    )
    assert built.returncode == 0, built.stderr
    wheel = next((tmp_path / "dist").glob("bertvault-*.whl"))
    target = tmp_path / "site"
    installed = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(target), str(wheel)],
        capture_output=True, text=True, timeout=300,
    )
    assert installed.returncode == 0, installed.stderr
    assert (target / "bertvault" / "_data" / "manifests" / "google-tf1.toml").is_file()
    assert (target / "bertvault" / "_data" / "converters" / "README.md").is_file()
    result = subprocess.run(
        [sys.executable, "-m", "bertvault", "info", "multi_cased", "--json"], capture_output=True, text=True,
        cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(target)}, timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["manifest"].startswith(str(target / "bertvault" / "_data" / "manifests"))


def test_an_unknown_fault_is_one_line_and_its_traceback_is_kept(monkeypatch, isolated_env) -> None:
    from bertvault.cache import catalog

    monkeypatch.setattr(catalog, "select", lambda *args, **kwargs: 1 / 0)
    result = invoke("list")
    assert result.exit_code == 1
    assert result.stderr.startswith(
        "internal error: ZeroDivisionError: division by zero; the traceback is in ")
    assert result.stderr.count("\n") == 1
    log = isolated_env / "cache" / "internal-errors.log"
    assert "Traceback" in log.read_text() and "1 / 0" in log.read_text()
    log.unlink()  # (the suite fails any other test that reaches this handler)


def test_add_errors_say_the_fix_and_name_the_users_manifest(isolated_env) -> None:
    manifest = isolated_env / "config" / "bertvault" / "manifests" / "user.toml"
    no_arch = invoke("add", "mine", "https://example.org/a/model.safetensors")
    assert no_arch.exit_code == 2 and no_arch.stderr.strip() == (
        "error: a checkpoint needs --arch LAYERS-HIDDEN-HEADS (e.g. --arch 12-768-12), or --kind dataset")
    bad_hash = invoke("add", "mine", "https://example.org/a/data.txt", "--kind", "dataset",
                      "--format", "text", "--sha256", "abc")
    assert bad_hash.exit_code == 2
    line = bad_hash.stderr.strip()
    assert line.startswith(f"error: {manifest}: artifact 'mine': files.0.sha256: sha256 must be 64 hex")
    assert line.endswith(f"; {manifest} is unchanged") and ".tmp" not in line and "\n" not in line
    assert not manifest.exists()  # nothing written (and no draft left beside it)
    assert not manifest.parent.exists() or not list(manifest.parent.iterdir())


def test_a_provenance_record_has_the_permissions_of_the_files_beside_it(tmp_path) -> None:
    from bertvault.provenance import record_path, write_record

    for umask in (0o022, 0o077):
        previous = os.umask(umask)
        try:
            out = tmp_path / f"out-{umask:o}"
            out.mkdir()
            (out / "model.safetensors").write_bytes(b"weights")
            write_record(out, "convert", [])
            lone = tmp_path / f"lone-{umask:o}.safetensors"
            lone.write_bytes(b"weights")
            write_record(lone, "convert", [])
        finally:
            os.umask(previous)
        weights_mode = (out / "model.safetensors").stat().st_mode & 0o777
        assert weights_mode == 0o666 & ~umask
        assert record_path(out).stat().st_mode & 0o777 == weights_mode
        assert record_path(lone).stat().st_mode & 0o777 == lone.stat().st_mode & 0o777

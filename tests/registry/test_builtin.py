"""The built-in manifests: valid, complete against the published artifacts, names that resolve, and
every published hash and size in place, well-formed and consistent."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from bertvault import hfuri, paths, relpath
from bertvault.registry import load_registry
from bertvault.registry.loader import read_manifest

BUILTIN = sorted(paths.builtin_manifests_dir().rglob("*.toml"))

AZURE = "https://bertonazuremlwestus2.blob.core.windows.net/"
GOOGLE = "https://storage.googleapis.com/bert_models/"
TF2 = "https://storage.googleapis.com/cloud-tpu-checkpoints/bert/v3/"
KERAS_BERT = "https://storage.googleapis.com/cloud-tpu-checkpoints/bert/keras_bert/"
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
        *(AZURE + f"{container}/data/preprocessed/512/wiki_pretrain/wikipedia_segmented_part_{i}.bin"
          for container in ("public2", "public") for i in range(99)),
        *(GOOGLE + z for z in TF1_ZIPS),
        *(GOOGLE + f"2020_02_20/uncased_L-{layers}_H-{h}_A-{h // 64}.zip" for layers, h in SMALL),
        GOOGLE + "2020_02_20/all_bert_models.zip",
        *(TF2 + f"{n}.tar.gz" for n in TF2_NAMES),
        *(KERAS_BERT + f"{n}.tar.gz" for n in TF2_NAMES[:4]),
        *(f"hf://google-bert/{r}/model.safetensors" for r in HUB_REPOS),
        *(f"hf://google/bert_uncased_L-{layers}_H-{h}_A-{h // 64}/pytorch_model.bin" for layers, h in SMALL),
    ]
    return urls


def test_builtin_manifests_are_found() -> None:
    assert len(BUILTIN) >= 5


@pytest.mark.parametrize("manifest", BUILTIN, ids=lambda p: p.name)
def test_each_builtin_manifest_validates(manifest: Path) -> None:
    entries = read_manifest(manifest, builtin=True)
    assert entries, f"{manifest} declares no artifact"


def _unpinned(url: str) -> str:
    """An hf:// URL without its revision (the reference list names files, not commits)."""
    if not url.startswith("hf://"):
        return url
    where = hfuri.parse(url)
    return f"hf://{where.repo_id}/{where.path}"


def test_every_published_artifact_is_registered() -> None:
    registry = load_registry()
    registered = {_unpinned(url) for artifact in registry for f in artifact.files for url in f.urls}
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


HEX = {"sha256": re.compile(r"[0-9a-f]{64}"), "md5": re.compile(r"[0-9a-f]{32}"),
       "crc32c": re.compile(r"[0-9a-f]{8}")}
# Hub artifacts whose published hashes name no commit (a download log that printed none): they follow
# the default branch, and `bertvault pin --refresh` pins them when a commit is wanted.
NO_COMMIT_PUBLISHED = {"bert-base-chinese"}


def test_every_builtin_hash_is_well_formed() -> None:
    stated = [(a.name, f.path, algo, value) for a in load_registry() for f in a.files
              for algo, value in [*((x, getattr(f, x)) for x in HEX),
                                  *(("sha256", m.sha256) for m in f.members.values())]
              if value is not None]
    assert len(stated) >= 70
    bad = [item for item in stated if not HEX[item[2]].fullmatch(item[3])]
    assert not bad


def test_every_member_path_is_safe_and_belongs_to_an_archive() -> None:
    members = [(a.name, f, path) for a in load_registry() for f in a.files for path in f.members]
    assert len(members) >= 7 * 5 + 4 * 4  # the seven 2018 zips and the four keras_bert tarballs
    assert not [(name, path) for name, f, path in members if relpath.problem(path) or f.archive is None]


def test_no_two_artifacts_disagree_about_the_same_url() -> None:
    facts: dict[tuple[str, str], dict[str, object]] = {}
    clashes = []
    for artifact in load_registry():
        for f in artifact.files:
            said = {"sha256": f.sha256, "size": f.size,
                    **{f"member {p}": m.sha256 for p, m in f.members.items()}}
            for url in f.urls:
                for what, value in said.items():
                    if value is None:
                        continue
                    first = facts.setdefault((url, what), {artifact.name: value})
                    if any(v != value for v in first.values()):
                        clashes.append((url, what, first, artifact.name, value))
                    first[artifact.name] = value
    assert not clashes


def test_hub_files_with_published_hashes_are_pinned_to_a_commit() -> None:
    hashed = [(a.name, url) for a in load_registry() for f in a.files if f.sha256
              for url in f.urls if url.startswith("hf://")]
    assert len(hashed) >= 20
    unpinned = [url for name, url in hashed if name not in NO_COMMIT_PUBLISHED
                and not re.fullmatch(r"[0-9a-f]{40}", hfuri.parse(url).revision or "")]
    assert not unpinned


def test_every_builtin_artifact_has_a_size() -> None:
    registry = load_registry()
    assert not [a.name for a in registry if a.shown_size[0] is None]
    exact = sorted(a.name for a in registry if a.shown_size[1])
    assert exact == ["bert-base-chinese", "bert-base-uncased", "bert-demo-tiny", "bert-large-uncased",
                     "multi_cased_L-12_H-768_A-12"]


@pytest.mark.parametrize(("name", "path", "sha256", "size"), [
    # published_hashes.md 2.1: every file of google-bert/bert-base-uncased at 86b5e093
    ("bert-base-uncased", "config.json",
     "7160e1553ad2ca51d8c1cb066be533db31826e12d173824c1bb0cb1a4f187d20", 570),
    ("bert-base-uncased", "model.safetensors",
     "68d45e234eb4a928074dfd868cead0219ab85354cc53d20e772753c6bb9169d3", 440449768),
    ("bert-base-uncased", "tf_model.h5",
     "a7a17d6d844b5de815ccab5f42cad6d24496db3850a2a43d8258221018ce87d2", 536063208),
    # 2.3 and 2.2: bert-large-uncased at 6da4b6a2, bert-base-cased at cd5ef92a
    ("bert-large-uncased", "model.safetensors",
     "28349a5c57338d0dca591bb95de533897c2399095c69d61e09604b46f444a4c4", 1344951957),
    ("bert-base-cased", "model.safetensors",
     "1d8bdcee6021e2c25f0325e84889b61c2eb26b843eef5659c247af138d64f050", 435755784),
    # 2.7: bert-base-chinese (no commit published)
    ("bert-base-chinese", "model.safetensors",
     "3404a1ffd8da507042e8161013ba2a4fc49858b4e3f8fbf5ce5724f94883aec3", 411553788),
    # 1a: the one Google zip whose size is published
    ("multi_cased_L-12_H-768_A-12", "multi_cased_L-12_H-768_A-12.zip", None, 662903077),
])
def test_published_facts_are_in_place(name: str, path: str, sha256: str | None, size: int) -> None:
    spec = next(f for f in load_registry().get(name).files if f.path == path)
    assert (spec.sha256, spec.size, spec.approx_size) == (sha256, size, None)


def test_member_hashes_of_the_google_zips() -> None:
    """1b: NVIDIA's hashes of the files inside the seven 2018 zips; 1d: the keras_bert tarballs."""
    registry = load_registry()
    zipped = {a.name: a.files[0].members for a in registry if a.files[0].members}
    assert len(zipped) == 11
    assert zipped["uncased_L-12_H-768_A-12"]["bert_model.ckpt.data-00000-of-00001"].sha256 == \
        "58580dc5e0bf0ae0d2efd51d0e8272b2f808857f0a43a88aaf7549da6d7a8a84"
    assert zipped["chinese_L-12_H-768_A-12"]["vocab.txt"].sha256 == \
        "45bbac6b341c319adc98a532532882e91a9cefc0329aa57bac9ae761c27b291c"
    # The same uncased vocabulary, wherever it is published, has one hash.
    uncased = ("uncased_L-12_H-768_A-12", "uncased_L-24_H-1024_A-16",
               "tf2-keras_bert-uncased_L-12_H-768_A-12")
    uncased_vocab = {zipped[n]["vocab.txt"].sha256 for n in uncased}
    hub_vocab = next(f.sha256 for f in registry.get("bert-base-uncased").files if f.path == "vocab.txt")
    assert uncased_vocab == {hub_vocab}
    # NVIDIA leaves `checkpoint` out of its uncased keras_bert lists; so do we.
    assert "checkpoint" not in zipped["tf2-keras_bert-uncased_L-12_H-768_A-12"]
    assert "checkpoint" in zipped["tf2-keras_bert-cased_L-12_H-768_A-12"]

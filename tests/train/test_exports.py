"""What pretrain and finetune export: HF folders whose tokenizer is the one `convert --to hf` writes."""

from __future__ import annotations

import json

import pytest

from bertvault import sources
from bertvault.convert import convert
from bertvault.train import checkpoint_io, finetune
from bertvault.train.tasks import heads

SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
WORDS = ["the", "man", "went", "to", "store", "a", "."]
SENTENCE = "The man went to the store."


@pytest.fixture
def word_model(tmp_path):
    """A tiny BERT whose vocab holds the sentence's words (and single letters, so nothing is [UNK])."""
    from transformers import BertConfig, BertForPreTraining

    letters = [chr(c) for c in range(ord("a"), ord("z") + 1)]
    tokens = list(dict.fromkeys(SPECIALS + WORDS + letters + [f"##{c}" for c in letters]))
    config = BertConfig(vocab_size=len(tokens), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=128)
    model = BertForPreTraining(config)
    folder = tmp_path / "tiny"
    model.save_pretrained(folder)
    (folder / "vocab.txt").write_text("\n".join(tokens) + "\n", encoding="utf-8")
    (folder / "tokenizer_config.json").write_text('{"do_lower_case": true}', encoding="utf-8")
    return folder, model, {t: i for i, t in enumerate(tokens)}


def _expected(vocab: dict[str, int]) -> list[int]:
    return [vocab[t] for t in ["[CLS]", "the", "man", "went", "to", "the", "store", ".", "[SEP]"]]


def _ids(folder) -> tuple[list[int], list[int]]:
    """The sentence through the folder's tokenizer.json alone and through AutoTokenizer."""
    from tokenizers import Tokenizer
    from transformers import AutoTokenizer

    raw = Tokenizer.from_file(str(folder / "tokenizer.json")).encode(SENTENCE).ids
    return raw, AutoTokenizer.from_pretrained(folder)(SENTENCE)["input_ids"]


def test_pretrain_export_tokenizes_words_not_unk(tmp_path, word_model):
    folder, model, vocab = word_model
    out = checkpoint_io.export_hf(model, folder / "vocab.txt", True, tmp_path / "model")
    raw, auto = _ids(out)
    assert raw == auto == _expected(vocab)
    assert json.loads((out / "tokenizer_config.json").read_text())["model_max_length"] == 128


def test_finetune_export_tokenizes_words_not_unk(tmp_path, word_model):
    folder, _, vocab = word_model
    (tmp_path / "train.tsv").write_text("sentence\tlabel\nthe man\ta\nthe store\tb\n", encoding="utf-8")
    train = str(tmp_path / "train.tsv")
    settings = finetune.resolve_settings({}, {"from_": str(folder), "train": train, "eval": train,
                                              "out": str(tmp_path / "run"), "max_seq_len": 32})
    from transformers import BertConfig, BertForSequenceClassification

    classifier = BertForSequenceClassification(BertConfig.from_pretrained(folder, num_labels=2))
    source = checkpoint_io.load_model_source(sources.resolve(str(folder), "checkpoint"), weights=False)
    out = heads.export_hf(classifier, source, True, settings, tmp_path / "model")
    raw, auto = _ids(out)
    assert raw == auto == _expected(vocab)
    assert json.loads((out / "tokenizer_config.json").read_text())["model_max_length"] == 32


def test_one_tokenizer_writer_for_every_hf_folder(tmp_path, word_model):
    """pretrain's export and `convert --to hf` write the same tokenizer files, byte for byte."""
    folder, model, _ = word_model
    exported = checkpoint_io.export_hf(model, folder / "vocab.txt", True, tmp_path / "model")
    converted = convert(folder, "hf", out=tmp_path / "converted", check=False).out
    for name in ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.txt"):
        assert (exported / name).read_bytes() == (converted / name).read_bytes(), name

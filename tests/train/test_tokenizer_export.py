"""The tokenizer written beside an exported model gives the ids bertvault trained with."""

from __future__ import annotations

from bertvault.formats.tokenizer import build_tokenizer, write_files

TEXT = ["Said the little ship, to all of us.", "An unknown word: zyzzyva's", "the garden"]


def test_autotokenizer_of_an_export_matches_the_training_tokenizer(tmp_path, tiny_bert):
    from transformers import AutoTokenizer

    folder = tmp_path / "export"
    folder.mkdir()
    (folder / "config.json").write_bytes((tiny_bert / "config.json").read_bytes())  # as in a model folder
    write_files(folder, tiny_bert / "vocab.txt", True, 64)
    loaded = AutoTokenizer.from_pretrained(folder)
    ours = build_tokenizer(tiny_bert / "vocab.txt", True)
    assert len(loaded.get_vocab()) == len((tiny_bert / "vocab.txt").read_text().splitlines())
    assert [loaded(t)["input_ids"] for t in TEXT] == [e.ids for e in ours.encode_batch(TEXT)]
    assert loaded.model_max_length == 64 and loaded("A", "b")["token_type_ids"] == [0, 0, 0, 1, 1]

"""The training dataset: dynamic masking statistics, order, rank partition, resume, model inputs."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from bertvault.data import prepare
from bertvault.data.dataset import MODEL_INPUTS, PretrainingDataset
from bertvault.errors import DataError
from bertvault.formats.vocab import read_vocab, vocab_tokens


@pytest.fixture
def native(tmp_path, make_corpus, uncased_vocab):
    text = make_corpus(documents=200)
    options = prepare.Options(seq_len=64)
    plan = prepare.plan([str(text)], str(uncased_vocab), str(tmp_path / "native"), options)
    header = prepare.run(plan)
    return tmp_path / "native", header


def _masking_counts(data: PretrainingDataset, vocab: dict[str, int], count: int):
    tokens = predictions = masked = kept = 0
    for k in range(count):
        item = data[k]
        a, b, _ = data.pair(data.example_index(k))
        original = np.concatenate([[vocab["[CLS]"]], a, [vocab["[SEP]"]], b, [vocab["[SEP]"]]])
        length = int(item["attention_mask"].sum())
        assert length == len(original)
        n = int(item["masked_lm_weights"].sum())
        positions = item["masked_lm_positions"][:n].numpy()
        labels = item["labels"].numpy()
        assert (np.flatnonzero(labels != -100) == positions).all()
        assert (labels[positions] == original[positions]).all()
        assert (item["masked_lm_ids"][:n].numpy() == original[positions]).all()
        unmasked = np.setdiff1d(np.arange(len(item["input_ids"])), positions)
        padded = np.concatenate([original, np.full(len(item["input_ids"]) - length, vocab["[PAD]"])])
        assert (item["input_ids"].numpy()[unmasked] == padded[unmasked]).all()
        tokens += length
        predictions += n
        masked += int((item["input_ids"].numpy()[positions] == vocab["[MASK]"]).sum())
        kept += int((item["input_ids"].numpy()[positions] == original[positions]).sum())
    return tokens, predictions, masked, kept


def test_dynamic_masking_statistics(native, uncased_vocab):
    out, header = native
    data = PretrainingDataset(out, seed=1)
    assert header["counts"]["examples"] > 1000
    vocab = read_vocab(uncased_vocab)
    tokens, predictions, masked, kept = _masking_counts(data, vocab, 1500)
    assert 0.14 < predictions / tokens < 0.16
    assert 0.77 < masked / predictions < 0.83
    assert 0.08 < kept / predictions < 0.12  # 10% kept, plus the rare random draw of the same token
    # the remaining ~10% are random vocab tokens


def test_whole_word_masking_masks_whole_words(native, uncased_vocab):
    out, _ = native
    data = PretrainingDataset(out, seed=2, whole_word_mask=True)
    continuation = np.array([t.startswith("##") for t in vocab_tokens(uncased_vocab)])
    pieces = 0
    for k in range(400):
        item = data[k]
        a, b, _ = data.pair(data.example_index(k))
        original = np.concatenate([[0], a, [0], b, [0]])
        chosen = set(item["masked_lm_positions"][: int(item["masked_lm_weights"].sum())].tolist())
        for p in chosen:
            if continuation[original[p]] and p - 1 not in (0, 1 + len(a)):  # not the first of A or B
                assert p - 1 in chosen, "a masked '##' piece has its word's previous piece masked too"
                pieces += 1
            if p + 1 < len(original) and continuation[original[p + 1]]:
                assert p + 1 in chosen
    assert pieces > 20


def test_same_seed_and_epoch_give_the_same_items_and_epochs_differ(native):
    out, _ = native
    first = PretrainingDataset(out, seed=5, epoch=0)
    again = PretrainingDataset(out, seed=5, epoch=0)
    other = PretrainingDataset(out, seed=5, epoch=1)
    for k in range(20):
        assert all(torch.equal(first[k][key], again[k][key]) for key in first[k])
    assert [first.example_index(k) for k in range(50)] != [other.example_index(k) for k in range(50)]
    # the same example is masked differently in another epoch
    example = first.example_index(0)
    k_other = next(k for k in range(len(other)) if other.example_index(k) == example)
    assert not torch.equal(first[0]["labels"], other[k_other]["labels"])


@pytest.mark.parametrize("world_size", [1, 3, 4])
def test_ranks_cover_every_example_exactly_once(native, world_size):
    out, _ = native
    seen = []
    for rank in range(world_size):
        data = PretrainingDataset(out, seed=9, epoch=2, rank=rank, world_size=world_size)
        seen += [data.example_index(k) for k in range(len(data))]
    total = PretrainingDataset(out).num_examples
    assert sorted(seen) == list(range(total))


def test_drop_remainder_gives_equal_ranks(native):
    out, _ = native
    lengths = {len(PretrainingDataset(out, rank=r, world_size=7, drop_remainder=True)) for r in range(7)}
    assert len(lengths) == 1


def test_resume_from_a_position_gives_the_same_following_items(native):
    out, _ = native
    full = PretrainingDataset(out, seed=4, epoch=3, rank=1, world_size=2)
    resumed = PretrainingDataset(out, seed=4, epoch=3, rank=1, world_size=2, start=37)
    assert len(resumed) == len(full) - 37
    for k in range(25):
        assert resumed.example_index(k) == full.example_index(37 + k)
        assert all(torch.equal(resumed[k][key], full[37 + k][key]) for key in MODEL_INPUTS)
    with pytest.raises(DataError, match="start"):
        PretrainingDataset(out, start=10**9)


def test_dataloader_workers_give_the_same_batches(native):
    out, _ = native
    data = PretrainingDataset(out, seed=8)
    serial = list(torch.utils.data.DataLoader(data, batch_size=16, num_workers=0))[:6]
    parallel = list(torch.utils.data.DataLoader(data, batch_size=16, num_workers=2))[:6]
    for x, y in zip(serial, parallel):
        assert all(torch.equal(x[key], y[key]) for key in x)


def test_batches_feed_bert_for_pretraining(native, uncased_vocab):
    from transformers import BertConfig, BertForPreTraining

    out, _ = native
    data = PretrainingDataset(out, seed=0)
    batch = next(iter(torch.utils.data.DataLoader(data, batch_size=8)))
    config = BertConfig(vocab_size=len(vocab_tokens(uncased_vocab)), hidden_size=32, num_hidden_layers=2,
                        num_attention_heads=2, intermediate_size=37, max_position_embeddings=64)
    torch.manual_seed(0)
    model = BertForPreTraining(config)
    output = model(**{k: batch[k] for k in MODEL_INPUTS})
    assert torch.isfinite(output.loss) and output.loss > 0
    output.loss.backward()
    # the gather-friendly arrays pick out exactly the labelled positions
    gathered = torch.gather(batch["input_ids"], 1, batch["masked_lm_positions"])
    assert gathered.shape == (8, data.spec.max_predictions)
    real = batch["masked_lm_weights"] > 0
    labels_at = torch.gather(batch["labels"], 1, batch["masked_lm_positions"])
    assert torch.equal(labels_at[real], batch["masked_lm_ids"][real])


def test_bad_sources(tmp_path, native, uncased_vocab, cased_vocab):
    out, _ = native
    with pytest.raises(DataError, match="neither a `bertvault prepare` output folder nor TFRecord"):
        PretrainingDataset(tmp_path / "nothing-here")
    with pytest.raises(DataError, match="not the vocab the data was prepared with"):
        PretrainingDataset(out, vocab=cased_vocab)
    with pytest.raises(DataError, match="rank"):
        PretrainingDataset(out, rank=2, world_size=2)

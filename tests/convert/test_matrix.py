"""Every readable layout x every writable format, on the tiny BERT: bit-exact, and the check passes."""

from __future__ import annotations

import numpy as np
import pytest
from tiny_bert import BUILDERS, GROUPS

from bertvault.convert import convert, load_canonical

WRITABLE = ["safetensors", "pt", "tf1", "hf", "azureml-pt"]
BASE = ["embeddings", "encoder"]


def _expected(tiny, groups: list[str]) -> dict[str, np.ndarray]:
    from bertvault.convert.schema import load_schema

    schema = load_schema()
    keep = set(BASE + groups)
    return {k: v for k, v in tiny.state.items() if schema.lookup(k)[0].group in keep}


def _assert_same(canonical, expected: dict[str, np.ndarray]) -> None:
    assert sorted(canonical.tensors) == sorted(expected)
    for name, array in expected.items():
        got = canonical.tensors[name].load()
        assert got.dtype == array.dtype, name
        assert np.array_equal(got, array), name


@pytest.mark.parametrize("label", list(BUILDERS))
def test_every_layout_reads_as_the_same_weights(label, sources, tiny):
    canonical = load_canonical(sources(label))
    assert canonical.groups == BASE + GROUPS[label]
    _assert_same(canonical, _expected(tiny, GROUPS[label]))
    assert canonical.config["vocab_size"] == tiny.config["vocab_size"]
    assert canonical.vocab_path is not None and canonical.lowercase is True


@pytest.mark.parametrize("to", WRITABLE)
@pytest.mark.parametrize("label", list(BUILDERS))
def test_matrix_round_trip_is_bit_exact_and_checked(label, to, sources, tiny, tmp_path):
    out = tmp_path / "out"
    result = convert(sources(label), to, out=out, check=True, drop_heads=to == "azureml-pt")
    assert result.check is not None and result.check.max_diff == 0.0, result.check.line()
    assert result.check.failures == []
    if "tf1" in (result.source_format, to):  # the TF1 graph witness ran, in float64
        assert result.check.oracle and max(result.check.oracle.values()) < 1e-9
    written = [g for g in GROUPS[label] if to != "azureml-pt" or g == "pooler"]
    assert result.left_out == [g for g in GROUPS[label] if g not in written]
    _assert_same(load_canonical(out), _expected(tiny, written))

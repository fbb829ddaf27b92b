"""Key-map patterns and the shipped converters/*.toml."""

from __future__ import annotations

import pytest

from bertvault.convert.keymap import load_keymap, parse_keymap, parse_pattern
from bertvault.convert.schema import load_schema
from bertvault.formats import FORMATS


def test_pattern_with_offset_and_choices_round_trips():
    choices = {"qkv": {"_query_dense": "query", "_key_dense": "key"}}
    source = parse_pattern("layer_with_weights-{i+4}/_attention_layer/{qkv}/kernel", set(choices))
    target = parse_pattern("bert.encoder.layer.{i}.attention.self.{qkv}.weight", set(choices))
    bindings = source.match("layer_with_weights-7/_attention_layer/_key_dense/kernel", "source", choices, 12)
    assert bindings == {"i": 3, "qkv": "key"}
    assert target.render(bindings, "target", choices, 12) == "bert.encoder.layer.3.attention.self.key.weight"
    back = target.match("bert.encoder.layer.3.attention.self.key.weight", "target", choices, 12)
    assert (source.render(back, "source", choices, 12)
            == "layer_with_weights-7/_attention_layer/_key_dense/kernel")


def test_constants_depend_on_the_layer_count():
    pooler = parse_pattern("layer_with_weights-{layers+4}/kernel", set())
    assert pooler.match("layer_with_weights-16/kernel", "source", {}, 12) == {}
    assert pooler.match("layer_with_weights-16/kernel", "source", {}, 2) is None


def test_bad_maps_are_rejected():
    with pytest.raises(ValueError, match="unknown placeholder"):
        parse_pattern("a/{nope}", set())
    with pytest.raises(ValueError, match="same placeholders"):
        parse_keymap({"format": "x", "rule": [{"source": "a/{i}", "target": "b"}]}, None)
    with pytest.raises(ValueError, match="source_shape"):
        parse_keymap({"format": "x", "rule": [{"source": "a", "target": "b", "ops": [{"reshape": [2]}]}]},
                     None)
    with pytest.raises(ValueError, match="unknown op"):
        parse_keymap({"format": "x", "rule": [{"source": "a", "target": "b", "ops": ["flip"]}]}, None)


@pytest.mark.parametrize("name", sorted({f.keymap for f in FORMATS.values()}))
def test_shipped_maps_load_and_name_real_canonical_keys(name):
    keymap = load_keymap(name)
    schema = load_schema()
    assert keymap.rules
    for rule in keymap.rules:
        literal = "".join(p for p in rule.target.parts if isinstance(p, str))
        if all(isinstance(p, str) for p in rule.target.parts):
            assert schema.lookup(literal) or literal in schema.ties, literal


def test_every_canonical_key_is_writable_by_the_full_formats():
    schema = load_schema()
    for name in ("tf1", "hf"):
        keymap = load_keymap(name)
        for group in schema.groups:
            for key in schema.keys(group, 2):
                assert keymap.write_rule(key, 2) is not None, (name, key)

"""bertvault's TF checkpoint reader against TensorFlow's own, on checkpoints TensorFlow wrote."""

from __future__ import annotations

import numpy as np
import pytest
import tiny_bert

from bertvault.errors import ConversionError
from bertvault.formats.tfbundle import BundleReader


@pytest.fixture(scope="module")
def mixed(tmp_path_factory):
    """Every dtype a checkpoint may hold, including TF2's string object graph."""
    import ml_dtypes

    rng = np.random.default_rng(0)
    variables = {
        "bert/embeddings/word_embeddings": rng.standard_normal((50, 8)).astype(np.float32),
        "half": rng.standard_normal((3, 5)).astype(np.float16),
        "brain": rng.standard_normal((7,)).astype(ml_dtypes.bfloat16),
        "double": rng.standard_normal((2, 2, 2)),
        "global_step": np.array(12345, dtype=np.int64),
        "scalar": np.array(1.5, dtype=np.float32),
    }
    folder = tmp_path_factory.mktemp("mixed")
    return tiny_bert.save_tf1(folder, variables), variables


def test_reads_what_tensorflow_reads(mixed):
    tf = tiny_bert.tensorflow()
    prefix, variables = mixed
    reference = tf.train.load_checkpoint(str(prefix))
    reader = BundleReader(prefix)
    assert sorted(reader.entries) == sorted(reference.get_variable_to_shape_map())
    for name, value in variables.items():
        entry = reader.entries[name]
        assert entry.shape == tuple(reference.get_variable_to_shape_map()[name])
        got = reader.read(name)
        assert got.dtype == value.dtype, name
        assert np.array_equal(got, reference.get_tensor(name)) and np.array_equal(got, value), name


def test_object_graph_strings_are_listed_but_not_weights(tmp_path):
    tf = tiny_bert.tensorflow()
    root = tf.Module()
    root.v = tf.Variable(np.ones((2, 3), np.float32))
    prefix = tf.train.Checkpoint(encoder=root).write(str(tmp_path / "ckpt"))
    reader = BundleReader(prefix)
    assert reader.entries["_CHECKPOINTABLE_OBJECT_GRAPH"].dtype == object
    assert np.array_equal(reader.read("encoder/v/.ATTRIBUTES/VARIABLE_VALUE"), np.ones((2, 3)))
    with pytest.raises(ConversionError, match="not a weight"):
        reader.read("_CHECKPOINTABLE_OBJECT_GRAPH")


def _copy(prefix, folder):
    folder.mkdir()
    for part in prefix.parent.glob(prefix.name + ".*"):
        (folder / part.name).write_bytes(part.read_bytes())
    return folder / prefix.name


def test_truncated_data_is_refused_up_front(mixed, tmp_path):
    prefix = _copy(mixed[0], tmp_path / "c")
    data = next(prefix.parent.glob("*.data-*"))
    data.write_bytes(data.read_bytes()[:-10])
    with pytest.raises(ConversionError, match="truncated"):
        BundleReader(prefix)


def test_flipped_bytes_fail_the_checksum(mixed, tmp_path):
    prefix = _copy(mixed[0], tmp_path / "c")
    reader = BundleReader(prefix)
    entry = reader.entries["bert/embeddings/word_embeddings"]
    data = next(prefix.parent.glob("*.data-*"))
    raw = bytearray(data.read_bytes())
    raw[entry.offset + 17] ^= 0xFF
    data.write_bytes(bytes(raw))
    with pytest.raises(ConversionError, match="checksum"):
        BundleReader(prefix).read("bert/embeddings/word_embeddings")


def test_missing_data_file_and_corrupt_index(mixed, tmp_path):
    prefix = _copy(mixed[0], tmp_path / "c")
    next(prefix.parent.glob("*.data-*")).unlink()
    with pytest.raises(ConversionError, match="missing"):
        BundleReader(prefix)
    other = _copy(mixed[0], tmp_path / "d")
    index = other.parent / (other.name + ".index")
    index.write_bytes(index.read_bytes()[:40])
    with pytest.raises(ConversionError, match="corrupt or truncated"):
        BundleReader(other)

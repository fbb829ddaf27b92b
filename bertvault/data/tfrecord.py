"""google-research/bert pretraining TFRecords, read and written without importing TensorFlow.

A TFRecord file is a sequence of records: uint64 length, masked crc32c of those 8 bytes, the
bytes, masked crc32c of the bytes (little-endian). Each record is a serialized
`tensorflow.Example`; its schema is declared here with protobuf's descriptor API (in a private
pool, so it never clashes with TensorFlow's own registration). `FEATURES` is the feature spec of
run_pretraining.py's `input_fn_builder`.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from bertvault.data import tfexample
from bertvault.data.tfexample import masked_crc
from bertvault.errors import DataError

# name -> (dtype, length key): every feature run_pretraining.py reads, in its order.
FEATURES = {
    "input_ids": ("int64", "seq_len"),
    "input_mask": ("int64", "seq_len"),
    "segment_ids": ("int64", "seq_len"),
    "masked_lm_positions": ("int64", "max_predictions"),
    "masked_lm_ids": ("int64", "max_predictions"),
    "masked_lm_weights": ("float", "max_predictions"),
    "next_sentence_labels": ("int64", "one"),
}

_HEADER = struct.Struct("<QI")
_CRC = struct.Struct("<I")


def _example_class():
    from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

    f = descriptor_pb2.FieldDescriptorProto
    file = descriptor_pb2.FileDescriptorProto(name="bertvault_example.proto", package="tensorflow",
                                              syntax="proto3")

    def message(name: str, *fields: tuple) -> descriptor_pb2.DescriptorProto:
        msg = file.message_type.add(name=name)
        for field_name, number, kind, label, type_name, oneof in fields:
            field = msg.field.add(name=field_name, number=number, type=kind, label=label)
            if type_name:
                field.type_name = type_name
            if oneof is not None:
                field.oneof_index = oneof
        return msg

    one, rep = f.LABEL_OPTIONAL, f.LABEL_REPEATED
    message("BytesList", ("value", 1, f.TYPE_BYTES, rep, "", None))
    message("FloatList", ("value", 1, f.TYPE_FLOAT, rep, "", None))
    message("Int64List", ("value", 1, f.TYPE_INT64, rep, "", None))
    feature = message(
        "Feature",
        ("bytes_list", 1, f.TYPE_MESSAGE, one, ".tensorflow.BytesList", 0),
        ("float_list", 2, f.TYPE_MESSAGE, one, ".tensorflow.FloatList", 0),
        ("int64_list", 3, f.TYPE_MESSAGE, one, ".tensorflow.Int64List", 0),
    )
    feature.oneof_decl.add(name="kind")
    entries = ("feature", 1, f.TYPE_MESSAGE, rep, ".tensorflow.Features.FeatureEntry", None)
    features = message("Features", entries)
    entry = features.nested_type.add(name="FeatureEntry")
    entry.options.map_entry = True
    entry.field.add(name="key", number=1, type=f.TYPE_STRING, label=one)
    entry.field.add(name="value", number=2, type=f.TYPE_MESSAGE, label=one, type_name=".tensorflow.Feature")
    message("Example", ("features", 1, f.TYPE_MESSAGE, one, ".tensorflow.Features", None))

    pool = descriptor_pool.DescriptorPool()
    pool.Add(file)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName("tensorflow.Example"))


_EXAMPLE = None


def example_class():
    """The tf.train.Example message class, built once on first use."""
    global _EXAMPLE
    if _EXAMPLE is None:
        _EXAMPLE = _example_class()
    return _EXAMPLE


KINDS = {name: kind for name, (kind, _) in FEATURES.items()}


def encode_records(batch: dict[str, np.ndarray]) -> np.ndarray:
    """TFRecord records of a batch of examples ([n, length] arrays under FEATURES' names), as bytes
    in an array: what protobuf's deterministic serialization and TensorFlow's writer would give."""
    return tfexample.records(batch, KINDS)


def decode_example(data: bytes, where: str) -> dict[str, np.ndarray]:
    """The features of one serialized Example; every FEATURES name must be there."""
    from google.protobuf.message import DecodeError

    try:
        example = example_class().FromString(data)
    except DecodeError as exc:
        raise DataError(f"{where}: not a tf.train.Example ({exc})") from None
    found = example.features.feature
    missing = [name for name in FEATURES if name not in found]
    if missing:
        raise DataError(f"{where}: lacks {', '.join(missing)}; expected google-research/bert pretraining "
                        "features")
    out = {}
    for name, (kind, _) in FEATURES.items():
        values = found[name].float_list.value if kind == "float" else found[name].int64_list.value
        out[name] = np.asarray(values, dtype=np.float32 if kind == "float" else np.int64)
    return out


def is_tfrecord(head: bytes) -> bool:
    """True when the first record header carries a valid length checksum."""
    if len(head) < _HEADER.size:
        return False
    length, crc = _HEADER.unpack_from(head)
    return masked_crc(head[:8]) == crc and length > 0


def index(path: Path) -> np.ndarray:
    """(offset of data, length) of every record: a map-style reader needs random access."""
    rows = []
    size = path.stat().st_size
    with open(path, "rb") as handle:
        offset = 0
        while offset < size:
            header = handle.read(_HEADER.size)
            if len(header) < _HEADER.size:
                raise DataError(f"{path}: truncated record header at byte {offset}; the file is incomplete")
            length, crc = _HEADER.unpack(header)
            if masked_crc(header[:8]) != crc:
                raise DataError(f"{path}: corrupt record header at byte {offset} (length checksum mismatch)")
            data_at = offset + _HEADER.size
            offset = data_at + length + _CRC.size
            if offset > size:
                start = data_at - _HEADER.size
                raise DataError(f"{path}: record at byte {start} runs past the end; the file is incomplete")
            rows.append((data_at, length))
            handle.seek(offset)
    return np.asarray(rows, dtype=np.int64).reshape(-1, 2)


def read_at(handle, offset: int, length: int, path: Path) -> bytes:
    handle.seek(offset)
    data = handle.read(length + _CRC.size)
    if len(data) != length + _CRC.size or masked_crc(data[:length]) != _CRC.unpack(data[length:])[0]:
        raise DataError(f"{path}: corrupt record at byte {offset} (data checksum mismatch)")
    return data[:length]


def first_record(path: Path) -> bytes:
    with open(path, "rb") as handle:
        header = handle.read(_HEADER.size)
        length, _ = _HEADER.unpack(header)
        return read_at(handle, _HEADER.size, length, path)


def records(path: Path) -> Iterator[bytes]:
    with open(path, "rb") as handle:
        for offset, length in index(path):
            yield read_at(handle, int(offset), int(length), path)

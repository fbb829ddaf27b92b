"""google-research/bert TF1 checkpoints: read a bundle, write one with exactly modeling.py's names.

The output folder is what google-research/bert's scripts take: bert_model.ckpt.{index,data-*},
bert_config.json, vocab.txt and a `checkpoint` state file.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from bertvault.errors import ConversionError
from bertvault.formats import sidecars
from bertvault.formats._tf import tensorflow
from bertvault.formats.base import TensorSource, WriteJob
from bertvault.formats.tensors import Entry
from bertvault.formats.tfbundle import BundleReader, Unsupported

log = logging.getLogger(__name__)

PREFIX = "bert_model.ckpt"


def sniff(source: TensorSource, path: Path) -> bool:
    """Any TF bundle that is not object-based (tf2 is asked first)."""
    return True


def read(prefix: Path) -> TensorSource:
    index = Path(f"{prefix}.index")
    if not index.is_file():
        raise ConversionError(
            f"{index} is missing: a TF checkpoint is PREFIX.index plus PREFIX.data-*-of-*; copy both"
        )
    try:
        reader = BundleReader(prefix)
    except Unsupported as why:
        log.info("%s: %s; reading it with TensorFlow", prefix, why)
        return _read_with_tensorflow(prefix)
    entries = {name: Entry(e.shape, e.dtype) for name, e in reader.entries.items()}
    return TensorSource(entries, reader.read, [index, *reader.data_files], close=reader.close)


def _read_with_tensorflow(prefix: Path) -> TensorSource:
    tf = tensorflow()
    try:
        reader = tf.train.load_checkpoint(str(prefix))
    except tf.errors.OpError as exc:
        raise ConversionError(f"cannot read TF checkpoint {prefix}: {exc.message.splitlines()[0]}") from None
    shapes, dtypes = reader.get_variable_to_shape_map(), reader.get_variable_to_dtype_map()
    entries = {}
    for name, shape in shapes.items():
        dtype = dtypes[name]
        np_dtype = np.dtype(object) if dtype == tf.string else np.dtype(dtype.as_numpy_dtype)
        entries[name] = Entry(tuple(shape), np_dtype)

    def load(name: str) -> np.ndarray:
        try:
            return np.asarray(reader.get_tensor(name))
        except tf.errors.OpError as exc:
            raise ConversionError(f"{prefix}: cannot read {name}: {exc.message.splitlines()[0]}") from None

    return TensorSource(entries, load, [Path(f"{prefix}.index")])


def write(dest: Path, job: WriteJob) -> None:
    """One variable per name, saved with TensorFlow's SaveV2: what tf.compat.v1 Saver writes."""
    tf = tensorflow()
    dest.mkdir(parents=True, exist_ok=True)
    names, values = [], []
    for name, tensor in job.tensors:
        names.append(name)
        values.append(tf.convert_to_tensor(tensor.load()))
    prefix = dest / PREFIX
    tf.raw_ops.SaveV2(prefix=str(prefix), tensor_names=names, shape_and_slices=[""] * len(names),
                      tensors=values)
    del values
    (dest / "checkpoint").write_text(
        f'model_checkpoint_path: "{PREFIX}"\nall_model_checkpoint_paths: "{PREFIX}"\n', encoding="utf-8"
    )
    sidecars.write_google_config(dest, job.config)
    sidecars.copy_vocab(dest, job.vocab_path, required=True, fmt="tf1")

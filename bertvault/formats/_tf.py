"""TensorFlow, imported only by the code that writes TF checkpoints (or reads the rare ones that
need it), quietly and once."""

from __future__ import annotations

import functools
import os

from bertvault.errors import ConversionError


@functools.cache
def tensorflow():
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    try:
        import tensorflow as tf
    except ImportError:
        raise ConversionError(
            "this needs TensorFlow, which is not installed; install it with `pip install 'bertvault[tf]'`"
        ) from None
    return tf

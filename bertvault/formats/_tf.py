"""TensorFlow, imported only by the code that writes TF checkpoints (or reads the rare ones that
need it), quietly and once."""

from __future__ import annotations

import functools
import os

from bertvault.errors import ConversionError


@functools.cache
def tensorflow():
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    # TensorFlow's C++ side prints absl/oneDNN banners to fd 2 while it loads, before any logging
    # setting applies; users asked for a conversion, not those lines.
    saved = os.dup(2)
    quiet = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(quiet, 2)
        import tensorflow as tf

        tf.constant(0)  # the first op initialises the runtime, which prints the rest
    except ImportError:
        raise ConversionError(
            "this needs TensorFlow, which is not installed; install it with `pip install 'bertvault[tf]'`"
        ) from None
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(quiet)
    return tf

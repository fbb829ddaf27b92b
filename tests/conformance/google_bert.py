"""google-research/bert's own code (PyPI `bert-tensorflow`) running under TensorFlow 2.

The published modules already import `tensorflow.compat.v1`; what they still need from TF 1.x:
- graph mode (`disable_v2_behavior`): sessions, placeholders, variable scopes;
- `tf.layers.dense` (modeling.py's pooler, run_pretraining.py's MLM transform): Keras 2 layers, which
  TensorFlow 2.16+ takes from the `tf_keras` package when TF_USE_LEGACY_KERAS=1;
- `tensorflow.contrib.layers.layer_norm` (modeling.py): contrib is gone; `install_contrib` provides it.
Nothing else of google's code is changed or reimplemented.
"""

from __future__ import annotations

import os
import sys
import types

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def layer_norm(inputs, begin_norm_axis=-1, begin_params_axis=-1, scope=None):
    """Replaces `tf.contrib.layers.layer_norm` as modeling.py calls it: variables `beta` and `gamma`
    in the scope `LayerNorm` (or `scope`), moments over the last axis, variance epsilon 1e-12."""
    import tensorflow.compat.v1 as tf

    if begin_norm_axis != -1 or begin_params_axis != -1:
        raise NotImplementedError("modeling.py normalises over the last axis only")
    with tf.variable_scope(scope, default_name="LayerNorm"):
        shape = inputs.shape[-1:]
        beta = tf.get_variable("beta", shape, dtype=inputs.dtype, initializer=tf.zeros_initializer())
        gamma = tf.get_variable("gamma", shape, dtype=inputs.dtype, initializer=tf.ones_initializer())
        mean, variance = tf.nn.moments(inputs, [inputs.shape.ndims - 1], keepdims=True)
        return tf.nn.batch_normalization(inputs, mean, variance, offset=beta, scale=gamma,
                                         variance_epsilon=1e-12)


def install_contrib() -> None:
    """`from tensorflow.contrib import layers` resolves to a module holding `layer_norm`."""
    if "tensorflow.contrib" in sys.modules:
        return
    contrib = types.ModuleType("tensorflow.contrib")
    layers = types.ModuleType("tensorflow.contrib.layers")
    layers.layer_norm = layer_norm
    contrib.layers = layers
    sys.modules["tensorflow.contrib"] = contrib
    sys.modules["tensorflow.contrib.layers"] = layers


def load() -> types.SimpleNamespace:
    """tf (compat.v1, graph mode) and google's modules: modeling, run_pretraining, run_classifier,
    tokenization."""
    import tensorflow.compat.v1 as tf

    tf.disable_v2_behavior()
    install_contrib()
    from bert import modeling, tokenization

    flags = tf.flags.FLAGS
    if not flags.is_parsed():
        flags.mark_as_parsed()  # tokenization reads --preserve_unused_tokens: its default, as a script's
    scripts = {name: _import_script(name, flags) for name in ("run_pretraining", "run_classifier")}
    return types.SimpleNamespace(tf=tf, modeling=modeling, tokenization=tokenization, **scripts)


def _import_script(name: str, flags) -> types.ModuleType:
    """Import bert.<name>, then forget the command-line flags it defined (only its main() reads them):
    run_pretraining.py and run_classifier.py both define `bert_config_file` & co., which absl refuses
    twice in one process (google ran each script in its own)."""
    import importlib

    before = set(flags)
    module = importlib.import_module(f"bert.{name}")
    for flag in set(flags) - before:
        delattr(flags, flag)
    return module


def count_examples(tf, path: str) -> tuple[int, int]:
    """(examples, examples whose B is a random next sentence) in a pretraining TFRecord file."""
    examples = random_next = 0
    for record in tf.io.tf_record_iterator(path):
        example = tf.train.Example.FromString(record)
        examples += 1
        random_next += example.features.feature["next_sentence_labels"].int64_list.value[0]
    return examples, random_next


def create_pretraining_data_runs(argv: list[str], seeds: list[int], out: str) -> None:
    """google's create_pretraining_data.py, its main() with these flags, once per seed in one process
    (TensorFlow starts once); prints a JSON line per seed with its output's counts."""
    import json

    import tensorflow.compat.v1 as tf

    tf.disable_v2_behavior()
    tf.logging.set_verbosity(tf.logging.ERROR)
    from bert import create_pretraining_data

    flags = tf.flags.FLAGS
    for seed in seeds:
        path = f"{out}/google-{seed}.tfrecord"
        flags(["create_pretraining_data", *argv, f"--random_seed={seed}", f"--output_file={path}"])
        tf.logging.set_verbosity(tf.logging.ERROR)  # main() sets INFO and logs the first examples
        create_pretraining_data.main(None)
        examples, random_next = count_examples(tf, path)
        os.remove(path)
        print(json.dumps({"seed": seed, "examples": examples, "random_next": random_next}), flush=True)


if __name__ == "__main__":
    # python google_bert.py SEEDS OUT_DIR FLAGS...: create_pretraining_data.py once per seed (1,2,5).
    create_pretraining_data_runs(sys.argv[3:], [int(s) for s in sys.argv[1].split(",")], sys.argv[2])

"""Pretraining data: tokenization, example construction, shards and the training dataset.

    tokenizer    BERT WordPiece from a vocab.txt (tokenizers), and the memoizing line encoder
    vocab        --vocab-from NAME|PATH: the vocab, the checkpoint's case and max positions
    inputs       what `prepare` was given: text (.gz), AzureML .bin shards, TFRecords
    pairs        google's sentence-pair construction (A, B, is-random-next)
    masking      google's masked-LM predictions (80/10/10, whole-word optional)
    features     one example's arrays, for the model or for a TFRecord
    azureml      the restricted unpickler for AzureML-BERT shards
    tfrecord     TFRecord framing and the tf.train.Example schema, without TensorFlow
    shards       the output folder: native shards, TFRecords, header, atomic writes
    prepare      `bertvault prepare`: plan, worker pool, progress, summary
    permutation  a seeded O(1)-memory permutation for shuffling huge datasets
    order        the shard-by-shard order of streamed data (each rank its own run of shards)
    streamed     readers of a prepared folder whose shards arrive while it is read
    dataset      the map-style torch Dataset the trainer reads (imports torch)
"""

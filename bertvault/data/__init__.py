"""Pretraining data: tokenization, example construction, shards and the training dataset."""

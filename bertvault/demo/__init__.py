"""The offline demo behind `make run`: a tiny registered checkpoint, the sample corpus, a small task."""

"""bertvault: a registry, downloader, converter and trainer for published BERT artifacts."""

__version__ = "0.1.0"

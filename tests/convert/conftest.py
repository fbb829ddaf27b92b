"""The tiny BERT and one checkpoint per readable layout, built once per test session."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import tiny_bert
from tiny_bert import BUILDERS


@pytest.fixture(scope="session")
def tiny(tmp_path_factory) -> tiny_bert.Tiny:
    return tiny_bert.build(tmp_path_factory.mktemp("tiny"))


@pytest.fixture(scope="session")
def sources(tiny, tmp_path_factory) -> Callable[[str], Path]:
    """sources(label) -> the path of the tiny BERT in that layout (built on first use)."""
    built: dict[str, Path] = {}

    def get(label: str) -> Path:
        if label not in built:
            folder = tmp_path_factory.mktemp(label.replace("-", "_")) / "ckpt"
            built[label] = Path(BUILDERS[label](tiny, folder))
        return built[label]

    return get

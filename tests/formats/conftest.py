"""Format tests share the tiny BERT builders of tests/convert."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "convert"))

import tiny_bert


@pytest.fixture(scope="session")
def tiny(tmp_path_factory) -> tiny_bert.Tiny:
    return tiny_bert.build(tmp_path_factory.mktemp("tiny"))

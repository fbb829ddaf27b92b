"""Fixtures for the cache tests."""

from __future__ import annotations

import os
from pathlib import Path

import pytest


@pytest.fixture
def home(isolated_env) -> Path:
    return Path(os.environ["BERTVAULT_HOME"])

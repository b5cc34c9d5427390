"""The `lab` fixture: namespaces of one test (see netlab.py), removed afterwards even on failure."""

from __future__ import annotations

from pathlib import Path

import pytest

from netlab import Lab


@pytest.fixture
def lab(tmp_path: Path):
    lab = Lab(tmp_path)
    try:
        yield lab
    finally:
        lab.close()

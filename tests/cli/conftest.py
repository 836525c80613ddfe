"""Fixtures of the CLI tests."""

from pathlib import Path

import pytest

from tests.cli.helpers import MLP, write_spec


@pytest.fixture
def mlp(tmp_path: Path) -> Path:
    """``helpers.MLP`` in a file of its own: ``mlp.json``."""
    return write_spec(tmp_path / "mlp.json", MLP)

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import Project, make_project


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """unit / integration markers from the folder a test lives in."""
    for item in items:
        kind = Path(str(item.fspath)).parent.name
        if kind in ("unit", "integration"):
            item.add_marker(getattr(pytest.mark, kind))


@pytest.fixture
def project(tmp_path: Path) -> Iterator[Project]:
    proj = make_project(tmp_path / "proj")
    yield proj
    if os.geteuid() == 0:
        # Whatever a test left, its own lab's destroy removes (and the test asserts on it).
        proj.lab("destroy", timeout=120)

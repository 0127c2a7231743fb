"""Every shell script of the project passes shellcheck (CI installs it)."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from tests.conftest import REPO

SCRIPTS = sorted([*REPO.glob("provision/*.sh"), *REPO.glob("tests/vm/*.sh"),
                  *(p for p in REPO.glob("scripts/*") if p.is_file()), REPO / ".ci" / "run"])


def test_there_are_scripts() -> None:
    assert len(SCRIPTS) >= 15


@pytest.mark.skipif(shutil.which("shellcheck") is None, reason="shellcheck not installed")
@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: str(p.relative_to(REPO)))
def test_shellcheck(script) -> None:
    proc = subprocess.run(["shellcheck", "-x", str(script)], capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 0, proc.stdout

"""The GitHub workflow's test selection (`-m portable`, and on Linux every unit test), run
here as an unprivileged user (`nobody`), as the workflow's runners run it: nothing in it
may need root.

CI runs as root, so this test drops to `nobody` with runuser. The checkout's .venv may be
made from an interpreter under a home `nobody` cannot enter (pyenv under /root): then a
system Python of the same version reads the same site-packages.
"""

from __future__ import annotations

import os
import shutil
import site
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from tests.support import REPO

pytestmark = pytest.mark.netns  # needs root to become another user

USER = "nobody"


def _as_user(argv: list[str], env: dict[str, str], timeout: float
             ) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["runuser", "-u", USER, "--", "env", *[f"{k}={v}" for k, v in
                                                                   env.items()], *argv],
                          capture_output=True, text=True, timeout=timeout, cwd=REPO)


def _python_for_user(env: dict[str, str]) -> str:
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    for candidate in (sys.executable, shutil.which(version) or "", f"/usr/bin/{version}"):
        if candidate and _as_user([candidate, "-c", "import yaml, click, lab"], env,
                                  60).returncode == 0:
            return candidate
    raise AssertionError(f"no {version} that {USER} can run and that finds lab's packages")


@pytest.mark.skipif(os.geteuid() != 0, reason="only root can become another user")
@pytest.mark.parametrize("selection", ["portable", "unit"])
def test_the_workflow_selection_passes_as_an_unprivileged_user(selection: str) -> None:
    with tempfile.TemporaryDirectory(prefix="lab-unpriv-") as home:
        shutil.chown(home, USER)
        env = {"HOME": home, "PYTHONDONTWRITEBYTECODE": "1", "COLUMNS": "150",
               "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
               "PYTHONPATH": os.pathsep.join([str(REPO), *site.getsitepackages()])}
        python = _python_for_user(env)
        assert _as_user(["id", "-u"], env, 30).stdout.strip() != "0"
        out = _as_user([python, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                        "--basetemp", str(Path(home) / "pytest"), "-m", selection,
                        "tests/unit"], env, 900)
    tail = out.stdout[-3000:] + out.stderr[-2000:]
    assert out.returncode == 0, tail
    summary = out.stdout.strip().splitlines()[-1]
    assert " passed" in summary and "failed" not in summary and "error" not in summary, tail

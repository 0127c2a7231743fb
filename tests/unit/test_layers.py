"""The layering is checked, not only described: the import contracts of pyproject.toml
pass on the code, and break on a copy of it with a deliberate violation."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support import REPO

LINT = Path(sys.executable).parent / "lint-imports"

pytestmark = pytest.mark.skipif(not LINT.exists(), reason="import-linter not installed")


def _lint(root: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(LINT), "--config", str(root / "pyproject.toml"),
                           "--no-cache"], cwd=root, capture_output=True, text=True,
                          timeout=120, env={"PYTHONPATH": str(root), "PATH": "/usr/bin:/bin"})


def test_the_contracts_hold() -> None:
    proc = _lint(REPO)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "BROKEN" not in proc.stdout and "KEPT" in proc.stdout, proc.stdout


@pytest.mark.parametrize(("module", "violation", "contract"), [
    ("run/runner.py", "from lab.backends.netns.backend import NetnsBackend",
     "the runner knows hosts only through the Host interface"),
    ("model/labfile.py", "from lab.run.runner import run_case",
     "the model (lab file, scenarios)"),
    ("backends/netns/backend.py", "from lab.backends.vagrant.backend import VagrantBackend",
     "backends are independent"),
    ("check.py", "from lab.backends.netns.checks import checks", "no import cycles"),
    ("kube/manifests.py", "from lab.run.runner import receiver_pod_specs",
     "Kubernetes objects and kubectl know no concrete backend"),
    ("report/console.py", "from lab.backends.vagrant import libvirtnet",
     "reports read outcomes and statuses"),
    ("backends/vagrant/cli.py", "from lab.backends.vagrant.backend import VagrantBackend",
     "no import cycles"),
    ("names.py", "from lab.cli import main", "only the CLI"),
    ("capture/capture.py", "from lab.backends.netns.host import NamespaceHost",
     "capture runs tcpdump through the Host interface"),
])
def test_a_violation_breaks_its_contract(tmp_path: Path, module: str, violation: str,
                                         contract: str) -> None:
    shutil.copytree(REPO / "lab", tmp_path / "lab",
                    ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(REPO / "pyproject.toml", tmp_path / "pyproject.toml")
    target = tmp_path / "lab" / module
    target.write_text(target.read_text() + f"\n{violation}  # noqa\n")
    proc = _lint(tmp_path)
    assert proc.returncode != 0, proc.stdout
    broken = proc.stdout.split("Broken contracts")[-1]
    assert contract in broken, proc.stdout

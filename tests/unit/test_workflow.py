"""The GitHub workflow that runs the portable tests on Linux, macOS and Windows: valid
against the workflow schema (SchemaStore's, vendored in check-jsonschema: no network), and
what it installs and selects exists here."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml

from tests.support import REPO

pytestmark = pytest.mark.portable

WORKFLOW = REPO / ".github" / "workflows" / "portable.yml"


def _validate(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "check_jsonschema", "--builtin-schema",
                           "vendor.github-workflows", str(path)],
                          capture_output=True, text=True, timeout=120)


def test_the_workflow_validates_and_a_broken_one_does_not(tmp_path: Path) -> None:
    ok = _validate(WORKFLOW)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    broken = yaml.safe_load(WORKFLOW.read_text())
    del broken["jobs"]["host-side"]["runs-on"]
    (tmp_path / "broken.yml").write_text(yaml.safe_dump(broken))
    refused = _validate(tmp_path / "broken.yml")
    assert refused.returncode == 1 and "runs-on" in refused.stdout + refused.stderr


def test_the_workflow_covers_every_os_and_installs_what_exists() -> None:
    flow = yaml.safe_load(WORKFLOW.read_text())
    job = flow["jobs"]["host-side"]
    oses = job["strategy"]["matrix"]["os"]
    assert any(o.startswith("ubuntu") for o in oses)
    assert any(o.startswith("windows") for o in oses)
    assert "macos-15" in oses and "macos-15-intel" in oses  # Apple Silicon and Intel
    extras = tomllib.loads((REPO / "pyproject.toml").read_text())["project"][
        "optional-dependencies"]
    runs = "\n".join(step.get("run", "") for step in job["steps"])
    assert 'pip install -e ".[portable-test]"' in runs and "portable-test" in extras
    assert "mutmut" not in " ".join(extras["portable-test"])  # POSIX-only tools stay out
    assert '-m "${{ matrix.selection }}" tests/unit' in runs
    selections = {job["strategy"]["matrix"]["selection"][0],
                  *(i["selection"] for i in job["strategy"]["matrix"]["include"])}
    assert selections == {"portable", "unit"}


def test_the_portable_selection_holds_the_host_side_tests() -> None:
    """What `-m portable` selects: the per-OS simulations and the models, parsers, reports."""
    out = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                          "--collect-only", "-m", "portable", str(REPO / "tests" / "unit")],
                         capture_output=True, text=True, timeout=300, cwd=REPO)
    assert out.returncode == 0, out.stdout + out.stderr
    files = {line.split("::")[0] for line in out.stdout.splitlines() if "::" in line}
    for name in ("test_host_os.py", "test_workflow.py", "test_mutants_scenario.py",
                 "test_pcap.py", "test_report_html.py", "test_vagrant.py"):
        assert f"tests/unit/{name}" in files, sorted(files)
    assert "tests/unit/test_scripts.py" not in files  # bash scripts: Linux and macOS only

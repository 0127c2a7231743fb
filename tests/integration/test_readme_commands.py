"""The README's Quickstart commands, taken from README.md and run verbatim in a fresh copy of
the repo (its own .venv, its own lab name): as root on a machine without sudo (a fresh
Debian image), and through sudo as a normal user. `sudo scripts/demo` used to exit 127 on
such an image.

Each copy installs its .venv with scripts/setup (a minute or so); the demo creates only
namespaces of its own lab and destroys them.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import REPO

pytestmark = [pytest.mark.netns, pytest.mark.slow]

TIMEOUT = 600  # a fresh copy: venv and pip install (~40 s), then the demo (~20 s)
SEED = ("host-baseline", "pod-multus", "pod-without-multus")
# Where a root login shell finds commands, so `ip` and friends exist whatever pytest's PATH.
ROOT_PATH_DIRS = ("/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin")
needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="needs root (namespaces, apt-get)")


def quickstart_commands() -> list[str]:
    """The commands of the Quickstart section's code block, comments dropped."""
    text = (REPO / "README.md").read_text()
    section = text.split("\n## Quickstart", 1)[1].split("\n## ", 1)[0]
    block = re.search(r"```sh\n(.*?)```", section, re.S)
    assert block, "README.md: no ```sh block in the Quickstart section"
    lines = (line.split("#", 1)[0].strip() for line in block.group(1).splitlines())
    return [line for line in lines if line]


def readme_command(script: str) -> str:
    (command,) = [c for c in quickstart_commands() if c.split()[0] == f"scripts/{script}"]
    return command


def copy_repo(dest: Path) -> str:
    """The repo's files as a checkout has them (tracked, plus new files not ignored: no
    .venv, .lab, results), with lab.yaml renamed to a lab of its own. Returns that name."""
    listed = subprocess.run(["git", "-C", str(REPO), "ls-files", "-z", "--cached", "--others",
                             "--exclude-standard"], capture_output=True, text=True, timeout=60)
    if listed.returncode == 0:
        for rel in sorted(set(filter(None, listed.stdout.split("\0")))):
            src = REPO / rel
            if src.is_file():  # a tracked file deleted in the work tree is not copied
                (dest / rel).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(src, dest / rel, follow_symlinks=False)
    else:  # not a git checkout
        shutil.copytree(REPO, dest, dirs_exist_ok=True, ignore=shutil.ignore_patterns(
            ".git", ".venv", ".lab", "results", "__pycache__", "*.egg-info", ".*_cache"))
    name = "t" + uuid.uuid4().hex[:8]
    lab_file = dest / "lab.yaml"
    text, count = re.subn(r"(?m)^name:.*$", f"name: {name}", lab_file.read_text(), count=1)
    assert count == 1, "lab.yaml: no top-level name:"
    lab_file.write_text(text)
    return name


def path_without_sudo(bindir: Path) -> str:
    """A folder of links to every command of PATH (and the usual root dirs) except sudo, as
    on a fresh image; the first one found wins, as PATH lookup does."""
    bindir.mkdir()
    dirs = [*os.environ.get("PATH", "").split(os.pathsep), *ROOT_PATH_DIRS]
    for d in dict.fromkeys(filter(None, dirs)):
        try:
            entries = list(Path(d).iterdir())
        except OSError:
            continue
        for exe in entries:
            link = bindir / exe.name
            if exe.name == "sudo" or os.path.lexists(link):
                continue
            if exe.is_file() and os.access(exe, os.X_OK):
                link.symlink_to(exe)
    assert shutil.which("sudo", path=str(bindir)) is None
    return str(bindir)


def lab_namespaces(name: str) -> list[str]:
    out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=True,
                         timeout=30).stdout
    return [line.split()[0] for line in out.splitlines()
            if line.split() and line.split()[0].startswith(name)]


def destroy_leftovers(copy: Path, name: str) -> None:
    """Only when a failed demo left its lab: the demo destroys it itself."""
    lab = copy / ".venv" / "bin" / "lab"
    if lab_namespaces(name) and lab.exists():
        subprocess.run([str(lab), "-f", str(copy / "lab.yaml"), "destroy"], cwd=copy,
                       capture_output=True, timeout=120)


def assert_demo_passed(proc: subprocess.CompletedProcess[str], copy: Path, name: str) -> None:
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out
    for scenario in SEED:
        assert re.search(rf"{scenario}\b.*\bPASS\b", proc.stdout), (scenario, out)
    assert lab_namespaces(name) == [], out


@pytest.fixture
def copy_dir() -> Iterator[Path]:
    # Under /tmp, 0755: a user other than root can reach it (pytest's tmp_path is 0700).
    root = Path(tempfile.mkdtemp(prefix="mcast-readme-", dir="/tmp"))
    root.chmod(0o755)
    try:
        yield root
    finally:
        shutil.rmtree(root, ignore_errors=True)


def test_quickstart_shows_the_plain_commands() -> None:
    assert quickstart_commands() == ["scripts/demo", "scripts/test"]


@needs_root
def test_demo_as_root_without_sudo(copy_dir: Path) -> None:
    copy = copy_dir / "repo"
    name = copy_repo(copy)
    env = {**os.environ, "PATH": path_without_sudo(copy_dir / "bin")}
    try:
        proc = subprocess.run(["bash", "-c", readme_command("demo")], cwd=copy, env=env,
                              capture_output=True, text=True, timeout=TIMEOUT)
        assert_demo_passed(proc, copy, name)
    finally:
        destroy_leftovers(copy, name)


@needs_root
@pytest.mark.skipif(not (shutil.which("sudo") and shutil.which("visudo")
                         and shutil.which("useradd") and shutil.which("runuser")),
                    reason="needs sudo and useradd (scripts/setup --test installs sudo)")
def test_demo_as_a_user_with_sudo(copy_dir: Path) -> None:
    user = "tq" + uuid.uuid4().hex[:8]
    sudoers = Path("/etc/sudoers.d") / user
    copy = copy_dir / "repo"
    name = copy_repo(copy)
    subprocess.run(["useradd", "--no-create-home", "--shell", "/bin/bash", user], check=True,
                   capture_output=True, timeout=60)
    try:
        # Written under a name sudo ignores (it has a dot), checked, then put in place.
        draft = sudoers.with_name(f".{user}.draft")
        draft.write_text(f"{user} ALL=(ALL:ALL) NOPASSWD: ALL\n")
        draft.chmod(0o440)
        subprocess.run(["visudo", "-cf", str(draft)], check=True, capture_output=True,
                       timeout=60)
        draft.rename(sudoers)
        subprocess.run(["chown", "-R", f"{user}:{user}", str(copy_dir)], check=True,
                       timeout=60)
        # The user's own login environment, not root's.
        env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": f"/home/{user}",
               "LANG": os.environ.get("LANG", "C.UTF-8")}
        shell = f"cd {shlex.quote(str(copy))} && {readme_command('demo')}"
        runuser = shutil.which("runuser") or "runuser"  # found on root's PATH, not the user's
        proc = subprocess.run([runuser, "-u", user, "--", "bash", "-lc", shell], env=env,
                              capture_output=True, text=True, timeout=TIMEOUT)
        assert_demo_passed(proc, copy, name)
    finally:
        destroy_leftovers(copy, name)
        for leftover in (sudoers, sudoers.with_name(f".{user}.draft"),
                         Path("/run/sudo/ts") / user, Path("/var/lib/sudo/lectured") / user):
            leftover.unlink(missing_ok=True)
        subprocess.run(["userdel", user], capture_output=True, timeout=60)


@needs_root
def test_test_script_as_root_without_sudo_reports_caches(copy_dir: Path) -> None:
    copy = copy_dir / "repo"
    copy_repo(copy)
    cache = copy_dir / "cache"  # stands for /var/cache/mcast-lab: reported, never removed
    (cache / "box").mkdir(parents=True)
    (cache / "box" / "test.box").write_bytes(b"\0" * 300_000)
    env = {**os.environ, "PATH": path_without_sudo(copy_dir / "bin"),
           "LAB_CACHE_DIR": str(cache)}
    env.pop("LAB_TEST_BOX_DIR", None)
    report = re.compile(rf"==> cache \S+ {re.escape(str(cache))} .*remove with scripts/clean-cache")

    def scripts_test(*pytest_args: str) -> subprocess.CompletedProcess[str]:
        # Verbatim, with pytest arguments appended so it does not run the whole suite again.
        command = " ".join([readme_command("test"), *pytest_args])
        return subprocess.run(["bash", "-c", command], cwd=copy, env=env,
                              capture_output=True, text=True, timeout=TIMEOUT)

    proc = scripts_test("--collect-only", "-q", "tests/unit/test_iperf.py")
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out
    collected = re.search(r"test_iperf\.py: (\d+)|(\d+) tests? collected", proc.stdout)
    assert collected and int(collected.group(1) or collected.group(2)) > 0, out
    assert report.search(proc.stdout), out

    # pytest fails (no such file): its status is kept and the caches are still reported.
    proc = scripts_test("-q", "tests/unit/no_such_test_file.py")
    assert proc.returncode == 4, proc.stdout + proc.stderr
    assert report.search(proc.stdout), proc.stdout + proc.stderr
    assert (cache / "box" / "test.box").exists()

"""Every shell script of the project passes shellcheck (CI installs it); scripts/clean-cache
lists and removes exactly the test caches (run against stand-ins, never the real ones)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.support import REPO

SCRIPTS = sorted([*REPO.glob("provision/*.sh"), *REPO.glob("tests/vm/*.sh"),
                  *(p for p in REPO.glob("scripts/*") if p.is_file()),
                  *REPO.glob("scripts/lib/*.sh"), REPO / ".ci" / "run"])


def test_there_are_scripts() -> None:
    assert len(SCRIPTS) >= 15
    names = {str(p.relative_to(REPO)) for p in SCRIPTS}
    assert {"scripts/demo", "scripts/test", "scripts/setup", "scripts/clean-cache",
            "scripts/lib/as-root.sh", "scripts/lib/caches.sh"} <= names


@pytest.mark.skipif(shutil.which("shellcheck") is None, reason="shellcheck not installed")
@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: str(p.relative_to(REPO)))
def test_shellcheck(script) -> None:
    proc = subprocess.run(["shellcheck", "-x", str(script)], capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 0, proc.stdout


BOX = "mcast-lab-VAGRANTSLASH-debian-12-test"
VOLUMES = [f"{BOX}_vagrant_box_image_0_1700000000_box.img",
           f"{BOX}_vagrant_box_image_0_1800000000_box.img"]
OTHERS = ["bento-VAGRANTSLASH-ubuntu-24.04_vagrant_box_image_202510.26.0_box.img",
          "t1234abcd-k8s.img"]
# Stand-ins for vagrant and virsh: they log their arguments and act on files under the test's
# folder only.
VIRSH = """#!/bin/bash
echo "virsh $*" >> "$STUB_LOG"
case " $* " in
  *" version "*) [[ -z $STUB_LIBVIRTD_DOWN ]] || exit 1 ;;
  *" vol-list "*) echo " Name   Path"; echo "-------------"
                  for v in $STUB_VOLUMES; do
                      [[ -e $STUB_POOL/$v ]] && echo " $v   $STUB_POOL/$v"; done ;;
  *" vol-delete "*) rm -f "$STUB_POOL/${@: -1}" ;;
esac
"""
VAGRANT = """#!/bin/bash
echo "vagrant $*" >> "$STUB_LOG"
rm -rf "$VAGRANT_HOME/boxes/mcast-lab-VAGRANTSLASH-debian-12-test"
"""


@pytest.fixture
def caches(tmp_path: Path) -> dict:
    """A cache folder, a Vagrant box and pool volumes (the box's and others), all under
    tmp_path, and the environment that points scripts/clean-cache at them."""
    stubs, pool, cache = tmp_path / "bin", tmp_path / "pool", tmp_path / "cache"
    for folder in (stubs, pool, cache / "box"):
        folder.mkdir(parents=True)
    (cache / "box" / "test.box").write_bytes(b"\1" * 2_000_000)
    box = tmp_path / "vagrant.d" / "boxes" / BOX / "0" / "libvirt"
    box.mkdir(parents=True)
    (box / "box.img").write_bytes(b"\1" * 1_000_000)
    for volume in VOLUMES + OTHERS:
        (pool / volume).write_bytes(b"\1" * 500_000)
    (tmp_path / "default.xml").write_text(
        f"<pool type='dir'>\n  <name>default</name>\n  <target>\n    <path>{pool}</path>\n"
        "  </target>\n</pool>\n")
    for name, text in (("virsh", VIRSH), ("vagrant", VAGRANT)):
        (stubs / name).write_text(text)
        (stubs / name).chmod(0o755)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LAB_", "VAGRANT_"))}
    env.update(PATH=f"{stubs}{os.pathsep}{os.environ['PATH']}", LAB_CACHE_DIR=str(cache),
               VAGRANT_HOME=str(tmp_path / "vagrant.d"),
               LAB_LIBVIRT_POOL_XML=str(tmp_path / "default.xml"),
               STUB_LOG=str(tmp_path / "calls.log"), STUB_POOL=str(pool),
               STUB_VOLUMES=" ".join(VOLUMES + OTHERS))
    return {"env": env, "cache": cache, "box": box, "pool": pool, "log": tmp_path / "calls.log"}


def clean_cache(env: dict, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(REPO / "scripts" / "clean-cache"), *args], env=env,
                          capture_output=True, text=True, timeout=60)


def du(path: Path) -> str:
    return subprocess.run(["du", "-sh", str(path)], capture_output=True, text=True, check=True,
                          timeout=60).stdout.split()[0]


def calls(log: Path) -> list[str]:
    lines = log.read_text().splitlines() if log.exists() else []
    return [line for line in lines if " version" not in line and " vol-list " not in line]


# As root only: not root, the script re-runs itself through sudo, which would not keep this
# test's environment beyond LAB_*.
needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="scripts/clean-cache runs as root")


@needs_root
@pytest.mark.parametrize("libvirtd", ["running", "stopped"])
def test_clean_cache_dry_run_lists_the_caches_with_sizes_and_removes_nothing(
        caches: dict, libvirtd: str) -> None:
    env = caches["env"]
    if libvirtd == "stopped":
        env["STUB_LIBVIRTD_DOWN"] = "1"
    proc = clean_cache(env, "--dry-run")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    listed = [line for line in proc.stdout.splitlines() if line.startswith("would remove")]
    assert len(listed) == 2 + len(VOLUMES), proc.stdout
    assert listed[0].split()[2:4] == [du(caches["cache"]), str(caches["cache"])], listed
    assert listed[1].split()[2:4] == [du(caches["box"].parents[1]),
                                      "mcast-lab/debian-12-test"], listed
    for line, volume in zip(listed[2:], VOLUMES, strict=True):
        target = volume if libvirtd == "running" else str(caches["pool"] / volume)
        assert line.split()[2:4] == [du(caches["pool"] / volume), target], listed
        assert str(caches["pool"] / volume) in line  # where it is, also through libvirtd
    assert not any(other in proc.stdout for other in OTHERS), proc.stdout
    assert calls(caches["log"]) == []
    assert (caches["cache"] / "box" / "test.box").exists() and caches["box"].exists()
    assert len(list(caches["pool"].iterdir())) == len(VOLUMES + OTHERS)


@needs_root
@pytest.mark.parametrize("libvirtd", ["running", "stopped"])
def test_clean_cache_removes_exactly_the_caches_and_is_idempotent(caches: dict,
                                                                  libvirtd: str) -> None:
    env = caches["env"]
    if libvirtd == "stopped":
        env["STUB_LIBVIRTD_DOWN"] = "1"
    proc = clean_cache(env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.count("removing ") == 2 + len(VOLUMES), proc.stdout
    assert not caches["cache"].exists()
    assert not (caches["box"].parents[1]).exists()
    assert sorted(p.name for p in caches["pool"].iterdir()) == sorted(OTHERS)
    expected = ["vagrant box remove --force --all mcast-lab/debian-12-test"]
    if libvirtd == "running":
        expected += [f"virsh -c qemu:///system vol-delete --pool default {v}" for v in VOLUMES]
    assert calls(caches["log"]) == expected

    again = clean_cache(env)
    assert again.returncode == 0, again.stdout + again.stderr
    assert "nothing to remove" in again.stdout
    assert calls(caches["log"]) == expected


def test_clean_cache_refuses_unknown_arguments() -> None:
    proc = subprocess.run([str(REPO / "scripts" / "clean-cache"), "--all"], capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 2 and "usage: scripts/clean-cache" in proc.stderr


# scripts/setup on other systems: SIMULATED with stand-ins on PATH (a `uname` that says
# Darwin; a machine with dnf and rpm but no apt-get). --dry-run says what it would install.

def _stand_ins(folder: Path, scripts: dict[str, str], real: tuple[str, ...]) -> str:
    folder.mkdir()
    for name, body in scripts.items():
        (folder / name).write_text(f"#!/bin/sh\n{body}\n")
        (folder / name).chmod(0o755)
    for name in real:
        (folder / name).symlink_to(shutil.which(name) or name)
    return str(folder)


def test_setup_on_macos_installs_the_tool_only_and_names_virtualbox_and_vagrant(
        tmp_path: Path) -> None:
    path = _stand_ins(tmp_path / "bin", {"uname": "echo Darwin"}, ())
    out = subprocess.run([str(REPO / "scripts" / "setup"), "--dry-run"], capture_output=True,
                         text=True, timeout=60,
                         env={"PATH": f"{path}:/usr/bin:/bin", "HOME": str(tmp_path)})
    assert out.returncode == 0, out.stderr
    assert "apt-get" not in out.stdout and "dnf" not in out.stdout
    assert "would run: .venv/bin/python -m pip install" in out.stdout
    assert "brew install --cask virtualbox && brew install hashicorp/tap/hashicorp-vagrant" \
        in out.stdout
    refused = subprocess.run([str(REPO / "scripts" / "setup"), "--dry-run", "--test"],
                             capture_output=True, text=True, timeout=60,
                             env={"PATH": f"{path}:/usr/bin:/bin", "HOME": str(tmp_path)})
    assert refused.returncode == 2 and "[portable-test]" in refused.stderr


def test_setup_with_dnf_names_fedoras_packages(tmp_path: Path) -> None:
    path = _stand_ins(tmp_path / "bin", {"dnf": "exit 0", "rpm": "exit 1"},
                      ("bash", "dirname", "uname"))
    out = subprocess.run([str(REPO / "scripts" / "setup"), "--dry-run"], capture_output=True,
                         text=True, timeout=60, env={"PATH": path, "HOME": str(tmp_path)})
    assert out.returncode == 0, out.stderr
    assert "would run: dnf install -y -q python3 python3-pip iproute iperf " \
           "containernetworking-plugins procps-ng coreutils tcpdump" in out.stdout
    assert "apt-get" not in out.stdout


def test_setup_without_a_known_installer_says_what_to_install(tmp_path: Path) -> None:
    path = _stand_ins(tmp_path / "bin", {}, ("bash", "dirname", "uname"))
    out = subprocess.run([str(REPO / "scripts" / "setup"), "--dry-run"], capture_output=True,
                         text=True, timeout=60, env={"PATH": path, "HOME": str(tmp_path)})
    assert out.returncode == 2 and "no apt-get or dnf here" in out.stderr

"""provision/lib.sh, the helpers every step runs with, by real bash: how a failure is
classified (75 transient, 76 no way out, 1 a failure) and said ("cause: ..."), and the
containerd config it renders for each major.

FAKE, named as such: `apt-get` and `curl` are scripts on PATH that print what the real
tools print in each case (their wording taken from the real runs: the CI VMs' apt without
internet, curl's error numbers); nothing here may reach a mirror. The containerd configs
are excerpts in the shape of `containerd config default` of 2.2 (config version 3) and 1.7
(version 2), holding the keys the function edits, from containerd's docs/cri/config.md.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.support import REPO

LIB = REPO / "provision" / "lib.sh"

CONTAINERD_2 = """version = 3
[plugins]
  [plugins.'io.containerd.cri.v1.images']
    [plugins.'io.containerd.cri.v1.images'.pinned_images]
      sandbox = 'registry.k8s.io/pause:3.10.1'
  [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc.options]
    SystemdCgroup = false
"""
CONTAINERD_1 = """version = 2
[plugins]
  [plugins."io.containerd.grpc.v1.cri"]
    sandbox_image = "registry.k8s.io/pause:3.8"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
      SystemdCgroup = false
"""
PAUSE = "registry.k8s.io/pause:3.10.2"


def bash(script: str, tmp_path: Path, stdin: str = "",
         fakes: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    for name, body in (fakes or {}).items():
        (bin_dir / name).write_text(f"#!/bin/sh\n# FAKE {name}\n{body}\n")
        (bin_dir / name).chmod(0o755)
    return subprocess.run(["bash", "-c", f"set -euo pipefail\nsource {LIB}\n{script}"],
                          input=stdin, capture_output=True, text=True, timeout=30,
                          env={"PATH": f"{bin_dir}:/usr/bin:/bin"})


@pytest.mark.parametrize(("major", "default", "want"), [
    ("2", CONTAINERD_2, f"      sandbox = '{PAUSE}'"),
    ("1", CONTAINERD_1, f'    sandbox_image = "{PAUSE}"'),
])
def test_containerd_config_pins_the_sandbox_in_the_key_of_its_major(
        tmp_path: Path, major: str, default: str, want: str) -> None:
    r = bash(f"lab_containerd_config {major} {PAUSE}", tmp_path, default)
    assert r.returncode == 0, r.stderr
    assert want in r.stdout.splitlines()
    assert "SystemdCgroup = true" in r.stdout and "SystemdCgroup = false" not in r.stdout
    assert r.stdout.count("\n") == default.count("\n")  # nothing else changed or lost


def test_a_containerd_config_without_the_key_fails_saying_so(tmp_path: Path) -> None:
    r = bash(f"lab_containerd_config 2 {PAUSE}", tmp_path, CONTAINERD_1)  # 1.x keys only
    assert r.returncode == 1
    assert "cause: containerd 2's default config has no pinned_images sandbox key" in r.stderr


NO_MIRROR = r"""echo "Err:1 http://deb.debian.org/debian bookworm InRelease"
echo "  Temporary failure resolving 'deb.debian.org'"
echo "Reading package lists..."
echo "W: Failed to fetch http://deb.debian.org/debian/dists/bookworm/InRelease  Temporary failure resolving 'deb.debian.org'"
echo "W: Some index files failed to download. They have been ignored, or old ones used instead."
exit 0"""  # noqa: E501
ONE_MIRROR_DOWN = r"""echo "Hit:1 http://deb.debian.org/debian bookworm InRelease"
echo "Err:2 https://pkgs.k8s.io/core:/stable:/v1.36/deb  InRelease"
echo "  503  Service Unavailable [IP: 1.2.3.4 443]"
echo "W: Failed to fetch https://pkgs.k8s.io/core:/stable:/v1.36/deb/InRelease  503  Service Unavailable"
exit 0"""  # noqa: E501


@pytest.mark.parametrize(("apt", "status", "cause"), [
    (NO_MIRROR, 76, "apt reaches none of its mirrors: Temporary failure resolving "
                    "'deb.debian.org'"),
    (ONE_MIRROR_DOWN, 75, "apt could not fetch every index: W: Failed to fetch "
                          "https://pkgs.k8s.io"),
    ("echo 'Hit:1 http://deb.debian.org/debian bookworm InRelease'; exit 0", 0, None),
    # apt-daily holds the lists lock at first boot: wait and try again.
    ("echo 'E: Could not get lock /var/lib/apt/lists/lock. It is held by process 812'; "
     "exit 100", 75, "apt's lists are locked by another apt: E: Could not get lock"),
    ("echo 'E: Malformed entry 1 in list file /etc/apt/sources.list.d/x.list'; exit 100",
     1, "apt-get update failed: E: Malformed entry 1"),
])
def test_apt_update_is_judged_by_what_it_said_not_its_exit_status(
        tmp_path: Path, apt: str, status: int, cause: str | None) -> None:
    r = bash("lab_apt_update", tmp_path, fakes={"apt-get": apt})
    assert r.returncode == status, r.stderr
    if cause:
        assert f"cause: {cause}" in r.stderr


@pytest.mark.parametrize(("apt", "status", "cause"), [
    ("echo \"E: Version '1.36.9-1.1' for 'kubeadm' was not found\"; exit 100", 1,
     "apt-get install kubeadm=1.36.9-1.1 failed: E: Version '1.36.9-1.1' for 'kubeadm' was "
     "not found"),
    ("echo 'E: Failed to fetch http://x/pool/c.deb  Temporary failure resolving x'; exit 100",
     75, "apt-get install kubeadm=1.36.9-1.1 failed for now: E: Failed to fetch"),
])
def test_apt_install_failures_are_told_apart(tmp_path: Path, apt: str, status: int,
                                             cause: str) -> None:
    r = bash("lab_apt_install kubeadm=1.36.9-1.1", tmp_path, fakes={"apt-get": apt})
    assert r.returncode == status and f"cause: {cause}" in r.stderr, r.stderr


@pytest.mark.parametrize(("curl", "status", "cause"), [
    ("echo 'curl: (6) Could not resolve host: pkgs.k8s.io' >&2; exit 6", 76,
     "cannot download https://pkgs.k8s.io/k: (6) Could not resolve host: pkgs.k8s.io"),
    ("echo 'curl: (22) The requested URL returned error: 502' >&2; exit 22", 75,
     "download of https://pkgs.k8s.io/k failed: (22) The requested URL returned error: 502"),
    ("echo 'curl: (22) The requested URL returned error: 404' >&2; exit 22", 1,
     "https://pkgs.k8s.io/k does not exist: (22) The requested URL returned error: 404"),
    ("echo 'curl: (7) Failed to connect to pkgs.k8s.io port 443' >&2; exit 7", 75,
     "download of https://pkgs.k8s.io/k failed: (7) Failed to connect"),
])
def test_a_download_with_no_way_out_is_not_retried(tmp_path: Path, curl: str, status: int,
                                                   cause: str) -> None:
    r = bash(f"lab_fetch https://pkgs.k8s.io/k {tmp_path}/k", tmp_path, fakes={"curl": curl})
    assert r.returncode == status and f"cause: {cause}" in r.stderr, r.stderr


def test_the_receiver_image_is_this_hosts_iperf_and_runs_on_its_own(tmp_path: Path) -> None:
    """lab_rootfs + lab_image_archive, for real on this machine (as the node does): the
    root file system runs its iperf and sleep with nothing from outside it (chroot), and the
    archive is the one-layer form `ctr images import` takes, its digests right."""
    import hashlib
    import json
    import os
    import shutil
    import tarfile

    if shutil.which("busybox") is None or os.geteuid() != 0:
        pytest.skip("needs busybox-static (scripts/setup --test installs it) and root")
    rootfs, out = tmp_path / "rootfs", tmp_path / "image.tar"
    r = bash(f"lab_rootfs {rootfs} && lab_image_archive {rootfs} mcast-lab/iperf:node {out}",
             tmp_path)
    assert r.returncode == 0, r.stderr
    inside = subprocess.run(["chroot", str(rootfs), "/usr/bin/iperf", "--version"],
                            capture_output=True, text=True, timeout=30)
    here = subprocess.run(["iperf", "--version"], capture_output=True, text=True, timeout=30)
    assert (inside.stderr + inside.stdout).startswith("iperf version 2.")
    assert inside.stderr + inside.stdout == here.stderr + here.stdout  # the same iperf
    assert subprocess.run(["chroot", str(rootfs), "/bin/sleep", "0"], timeout=30).returncode \
        == 0
    with tarfile.open(out) as tar:
        (manifest,) = json.loads(tar.extractfile("manifest.json").read())  # type: ignore
        config_bytes = tar.extractfile(manifest["Config"]).read()  # type: ignore
        layer = tar.extractfile(manifest["Layers"][0]).read()  # type: ignore
    config = json.loads(config_bytes)
    assert manifest["RepoTags"] == ["mcast-lab/iperf:node"]
    assert manifest["Config"] == hashlib.sha256(config_bytes).hexdigest() + ".json"
    assert config["rootfs"]["diff_ids"] == ["sha256:" + hashlib.sha256(layer).hexdigest()]
    arch = subprocess.run(["dpkg", "--print-architecture"], capture_output=True, text=True,
                          check=True).stdout.strip()
    assert (config["architecture"], config["os"]) == (arch, "linux")


def test_the_iperf_step_installs_what_is_missing_and_ends_well(tmp_path: Path) -> None:
    """iperf 2 exits 1 after printing its version (2.1.8 does): the step must not take
    that for a failure once it installed iperf. FAKE apt-get "installs" by making the
    fake iperf and tcpdump answer."""
    installed = tmp_path / "installed"
    apt = f'echo "apt-get $*" >> {tmp_path}/calls; case "$*" in *install*) touch {installed};; ' \
          'esac; exit 0'
    iperf = (f'[ -e {installed} ] || exit 127\necho "iperf version 2.1.8 (12 August 2022) '
             'pthreads"; exit 1')
    tcpdump = f'[ -e {installed} ] || exit 127\necho "tcpdump version 4.99.3"'
    step = (REPO / "provision" / "iperf.sh").read_text()
    r = bash(step, tmp_path, fakes={"apt-get": apt, "iperf": iperf, "tcpdump": tcpdump})
    assert r.returncode == 0, r.stderr
    # tcpdump is a file on PATH (command -v finds it): only iperf is missing.
    assert (tmp_path / "calls").read_text().splitlines()[-1].endswith(" install iperf")
    assert r.stdout.splitlines()[-2:] == ["iperf version 2.1.8 (12 August 2022) pthreads",
                                          "tcpdump version 4.99.3"]

"""lab.lock: reading a host's inventory, writing and reading the lock, the first
difference it names, and the shell side of `--locked` (lib.sh by real bash)."""

from __future__ import annotations

import hashlib
import subprocess
from pathlib import Path

import pytest

from lab.errors import ConfigError
from lab.lockfile import inventory
from lab.lockfile.lock import Box, Lock, first_difference, path_for, read, write
from tests.unit.test_provision_lib import bash

pytestmark = pytest.mark.portable

# What the inventory script prints on a node (tab-separated), as dpkg-query, iperf, ctr
# and the steps' download record word it.
NODE = ("pkg\tcontainerd\t1.6.20~ds1-1+deb12u3\npkg\tiperf\t2.1.8+dfsg-1\n"
        "pkg\tcontainernetworking-plugins\t1.1.1+ds1-3+b5\n"
        "iperf\tiperf version 2.1.8 (12 August 2022) pthreads\n"
        "image\tregistry.k8s.io/pause:3.10.2\tsha256:" + "a" * 64 + "\n"
        "fetch\thttps://example.invalid/kube-flannel.yml\t" + "b" * 64 + "\n")


def _lock() -> Lock:
    return Lock.of("demo", "vagrant", "libvirt",
                   Box("mcast-lab/debian-12-test", "0", "libvirt", "c" * 64),
                   {"mcastsrc": inventory.parse("pkg\tiperf\t2.1.8+dfsg-1\niperf\tiperf "
                                                "version 2.1.8\n"),
                    "k8s": inventory.parse(NODE)})


def test_an_inventory_is_read_from_what_the_host_prints() -> None:
    inv = inventory.parse(NODE)
    assert inv.packages == {"containerd": "1.6.20~ds1-1+deb12u3", "iperf": "2.1.8+dfsg-1",
                            "containernetworking-plugins": "1.1.1+ds1-3+b5"}
    assert inv.cni_plugins == "containernetworking-plugins 1.1.1+ds1-3+b5"
    assert inv.iperf.startswith("iperf version 2.1.8")
    assert inv.images == {"registry.k8s.io/pause:3.10.2": "sha256:" + "a" * 64}
    assert inv.downloads == {"https://example.invalid/kube-flannel.yml": "b" * 64}


def test_the_lock_round_trips_and_is_rewritten_only_when_it_changes(tmp_path: Path) -> None:
    path = path_for(tmp_path / "lab.yaml")
    assert path.name == "lab.lock"
    lock = _lock()
    assert write(lock, path) is True
    text = path.read_text()
    assert text.startswith("# lab.lock: exactly what `lab up` made lab demo of")
    assert "timestamp" not in text and "written" not in text.split("\n", 3)[-1]
    assert write(lock, path) is False and path.read_text() == text  # same bytes
    back = read(path)
    assert first_difference(lock, back) is None and first_difference(back, lock) is None
    assert back.downloads == lock.downloads and back.box == lock.box


@pytest.mark.parametrize(("change", "said"), [
    (lambda lk: lk.hosts["k8s"].packages.update(iperf="2.1.9-1"),
     "hosts.k8s.packages.iperf: 2.1.9-1 here, the lock says 2.1.8+dfsg-1"),
    (lambda lk: lk.hosts["k8s"].packages.pop("containerd"),
     "hosts.k8s.packages.containerd: not here, the lock says 1.6.20~ds1-1+deb12u3"),
    (lambda lk: lk.hosts["k8s"].packages.update(runc="1.1.5"),
     "hosts.k8s.packages.runc: 1.1.5 here, not in the lock"),
    (lambda lk: setattr(lk.box, "sha256", "d" * 64),
     f"box.sha256: {'d' * 64} here, the lock says {'c' * 64}"),
    (lambda lk: lk.hosts["k8s"].images.update({"registry.k8s.io/pause:3.10.2": "sha256:e"}),
     "hosts.k8s.images.registry.k8s.io/pause:3.10.2: sha256:e here, the lock says sha256:"),
    (lambda lk: lk.downloads.update({"https://example.invalid/kube-flannel.yml": "f"}),
     "downloads.https://example.invalid/kube-flannel.yml: f here, the lock says bbbb"),
])
def test_the_first_difference_names_the_key_and_both_values(change, said: str) -> None:
    found = _lock()
    change(found)
    assert (first_difference(_lock(), found) or "").startswith(said)


def test_a_download_not_made_again_is_no_difference() -> None:
    found = _lock()
    found.downloads.clear()  # its step was done: nothing fetched, nothing to compare
    assert first_difference(_lock(), found) is None


def test_a_bad_lock_is_refused_naming_the_file_and_key(tmp_path: Path) -> None:
    path = tmp_path / "lab.lock"
    with pytest.raises(ConfigError, match="no lock file"):
        read(path)
    path.write_text("lock: 1\nlab: demo\nbackend: vagrant\nhosts:\n  k8s:\n    packages: [a]\n"
                    "box: {name: x}\n")
    with pytest.raises(ConfigError) as info:
        read(path)
    keys = {p.key for p in info.value.problems}
    assert keys == {"hosts.k8s.packages", "box"} and str(path) in str(info.value)


def test_apt_installs_the_locked_versions_and_leaves_explicit_ones(tmp_path: Path) -> None:
    apt = 'echo "apt-get $*" >> "$CALLS"'
    calls = tmp_path / "calls"
    r = bash(f'export CALLS={calls} LAB_LOCKED="iperf=2.1.8+dfsg-1 tcpdump=4.99.3-1"\n'
             "lab_apt_install iperf tcpdump busybox-static --allow-downgrades kubelet=1.36.3",
             tmp_path, fakes={"apt-get": apt})
    assert r.returncode == 0, r.stderr
    assert calls.read_text().split(" install ")[1].split() == [
        "iperf=2.1.8+dfsg-1", "tcpdump=4.99.3-1", "busybox-static", "--allow-downgrades",
        "kubelet=1.36.3"]


def test_a_download_is_recorded_and_refused_when_the_lock_knows_another(tmp_path: Path
                                                                       ) -> None:
    curl = 'while [ "$1" != -o ]; do shift; done; printf "manifest v1\\n" > "$2"'
    state = tmp_path / "state"
    url = "https://example.invalid/m.yml"
    ok = bash(f"export LAB_STATE_DIR={state}; lab_fetch {url} {tmp_path}/m", tmp_path,
              fakes={"curl": curl})
    assert ok.returncode == 0, ok.stderr
    (line,) = (state / "downloads").read_text().splitlines()
    recorded_url, digest = line.split("\t")
    assert recorded_url == url and len(digest) == 64
    same = bash(f'export LAB_LOCKED_FETCH="{url} {digest}"; lab_fetch {url} {tmp_path}/m',
                tmp_path, fakes={"curl": curl})
    assert same.returncode == 0, same.stderr
    changed = bash(f'export LAB_LOCKED_FETCH="https://other.invalid/x {digest} {url} '
                   f'{"0" * 64}"; lab_fetch {url} {tmp_path}/m', tmp_path, fakes={"curl": curl})
    assert changed.returncode == 1
    assert f"cause: {url} changed since lab.lock was written: sha256 {digest}" in changed.stderr


def test_the_download_record_lab_fetch_writes_is_what_the_lock_and_bundle_read(
        tmp_path: Path) -> None:
    """lib.sh's lab_fetch writes the record; lab/fetched.py's shell lines list it; the
    inventory and the bundle's listing both read those lines the same way."""
    from lab import fetched
    from lab.bundle.from_lab import listing
    source = tmp_path / "flannel.yml"
    source.write_text("kind: DaemonSet\n")
    state = tmp_path / "state"
    wrote = bash(f'LAB_STATE_DIR={state}; mkdir -p "$LAB_STATE_DIR"\n'
                 f'lab_fetch https://example.invalid/kube-flannel.yml {tmp_path}/got '
                 f'< /dev/null\n', tmp_path,
                 fakes={"curl": f'for a; do case "$prev" in -o) cp {source} "$a";; esac; '
                                'prev=$a; done'})
    listed = subprocess.run(["sh", "-c", f"state={state}\n{fetched.LIST_SHELL}"],
                            capture_output=True, text=True, timeout=30, check=True).stdout
    digest = hashlib.sha256(source.read_bytes()).hexdigest()
    assert wrote.returncode == 0, wrote.stderr
    assert inventory.parse(listed).downloads == {
        "https://example.invalid/kube-flannel.yml": digest}
    assert listing(listed).fetched == {"https://example.invalid/kube-flannel.yml": digest}
    assert (state / "downloads.d" / digest).read_bytes() == source.read_bytes()
    assert fetched.copy_path(str(state), digest) == str(state / "downloads.d" / digest)

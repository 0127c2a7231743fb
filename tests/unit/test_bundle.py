"""Offline bundles: the manifest and its verification, the bundle step by real bash with
real dpkg-deb and a real (simulated) apt install from it, and Vagrant's own `box add` of
a bundle's box from its catalog, with the real vagrant CLI and no network.

Packages here are built on the spot with `dpkg-deb --build` (tiny, with a dependency
between them), so no test needs a mirror."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from lab.backends.vagrant.backend import bundle_box_catalog
from lab.backends.vagrant.boxes import box_dir, tree_sha256
from lab.bundle.make import pack_box
from lab.bundle.manifest import Bundle, read, sha256_of, verify
from lab.errors import ConfigError
from tests.support import REPO

CODENAME = next((line.split("=", 1)[1].strip('"') for line in
                 Path("/etc/os-release").read_text().splitlines()
                 if line.startswith("VERSION_CODENAME=")), "")
needs_dpkg = pytest.mark.skipif(shutil.which("dpkg-deb") is None or not CODENAME,
                                reason="needs a Debian-family machine (dpkg-deb, apt)")


def _deb(folder: Path, name: str, depends: str = "") -> Path:
    root = folder / f"build-{name}"
    (root / "DEBIAN").mkdir(parents=True)
    arch = subprocess.run(["dpkg", "--print-architecture"], capture_output=True, text=True,
                          check=True).stdout.strip()
    control = (f"Package: {name}\nVersion: 1.0-1\nArchitecture: {arch}\n"
               "Maintainer: mcast-lab tests <tests@invalid>\nDescription: test package\n")
    if depends:
        control += f"Depends: {depends}\n"
    (root / "DEBIAN" / "control").write_text(control)
    out = folder / "debs" / f"{name}_1.0-1_{arch}.deb"
    out.parent.mkdir(exist_ok=True)
    subprocess.run(["dpkg-deb", "--build", "--root-owner-group", str(root), str(out)],
                   check=True, capture_output=True, timeout=60)
    shutil.rmtree(root)
    return out


def _bundle(tmp_path: Path) -> Bundle:
    folder = tmp_path / "bundle"
    folder.mkdir()
    _deb(folder, "mcastlab-test-lib")
    _deb(folder, "mcastlab-test-tool", depends="mcastlab-test-lib")
    (folder / "files").mkdir()
    (folder / "files" / "m.yml").write_text("kind: List\n")
    arch = subprocess.run(["dpkg", "--print-architecture"], capture_output=True, text=True,
                          check=True).stdout.strip()
    bundle = Bundle(folder, CODENAME, arch, downloads={"https://example.invalid/m.yml":
                                                       "files/m.yml"})
    for path in sorted(folder.rglob("*")):
        if path.is_file():
            bundle.add(path.relative_to(folder).as_posix())
    bundle.write()
    return bundle


@needs_dpkg
def test_a_bundle_reads_back_and_a_missing_or_corrupt_file_is_named(tmp_path: Path) -> None:
    bundle = _bundle(tmp_path)
    back = read(bundle.folder)
    assert back.files == bundle.files and back.release == CODENAME
    verify(back)  # whole: no error
    (deb,) = [p for p in back.files if "tool" in p]
    data = bytearray((back.folder / deb).read_bytes())
    data[len(data) // 2] ^= 0xFF
    (back.folder / deb).write_bytes(bytes(data))
    (back.folder / "files" / "m.yml").unlink()
    with pytest.raises(ConfigError) as info:
        verify(back)
    said = {p.key: p.message for p in info.value.problems}
    assert set(said) == {f"files.{deb}", "files.files/m.yml"}
    assert "is corrupt: its sha256 is" in said[f"files.{deb}"]
    assert "is missing from the bundle" in said["files.files/m.yml"]
    assert str(back.folder / "bundle.yaml") in str(info.value)


def test_a_folder_without_a_manifest_is_no_bundle(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no bundle.yaml in .*: not a bundle"):
        read(tmp_path)


def _step(bundle: Path, release: str, arch: str, extra: str = "") -> subprocess.CompletedProcess:
    script = (REPO / "provision" / "lib.sh").read_text() + "\n" + \
        (REPO / "provision" / "bundle.sh").read_text() + "\n" + extra
    return subprocess.run(["bash", "-s"], input=script, capture_output=True, text=True,
                          timeout=120, env={"PATH": os.environ["PATH"], "LAB_BUNDLE": str(bundle),
                                            "LAB_BUNDLE_RELEASE": release,
                                            "LAB_BUNDLE_ARCH": arch})


def _sent(bundle: Bundle, to: Path) -> Path:
    """What `lab up --bundle` puts on a host: the files, SHA256SUMS and downloads.tsv."""
    shutil.copytree(bundle.folder, to)
    (to / "SHA256SUMS").write_text("".join(f"{d}  {r}\n" for r, d in bundle.files.items()))
    (to / "downloads.tsv").write_text("".join(f"{u}\t{r}\n" for u, r in
                                              bundle.downloads.items()))
    return to


@needs_dpkg
def test_the_bundle_step_makes_an_apt_source_that_apt_installs_from(tmp_path: Path) -> None:
    bundle = _bundle(tmp_path)
    sent = _sent(bundle, tmp_path / "sent")
    # apt in the bundle's mode, after the step: its lists from the bundle only, and an
    # install simulated (nothing is installed on this machine), the dependency resolved
    # from the bundle; lab_fetch copies the URL's file from the bundle.
    after = ('lab_apt_update >/dev/null\n"${LAB_APT[@]}" -s install mcastlab-test-tool\n'
             f'lab_fetch https://example.invalid/m.yml {tmp_path}/m.yml\n')
    r = _step(sent, bundle.release, bundle.architecture, after)
    assert r.returncode == 0, r.stderr
    assert "2 packages, 0 images" in r.stdout
    assert "Inst mcastlab-test-lib (1.0-1 localhost" in r.stdout
    assert "Inst mcastlab-test-tool (1.0-1 localhost" in r.stdout
    assert (tmp_path / "m.yml").read_text() == "kind: List\n"
    assert (sent / "apt" / "sources.list").read_text() == \
        f"deb [trusted=yes] file:{sent}/debs ./\n"


@needs_dpkg
def test_the_bundle_step_refuses_a_corrupt_copy_and_another_release(tmp_path: Path) -> None:
    bundle = _bundle(tmp_path)
    sent = _sent(bundle, tmp_path / "sent")
    other = _step(sent, "trixie-or-other", bundle.architecture)
    assert other.returncode == 1
    assert f"the bundle's packages are for trixie-or-other/{bundle.architecture} and this " \
           f"host runs {CODENAME}/{bundle.architecture}" in other.stderr
    (deb,) = sorted((sent / "debs").glob("*tool*.deb"))
    deb.write_bytes(deb.read_bytes()[:-10])
    corrupt = _step(sent, bundle.release, bundle.architecture)
    assert corrupt.returncode == 1
    assert f"cause: the bundle's copy on this host is not the bundle: debs/{deb.name}: FAILED" \
        in corrupt.stderr
    missing = _step(tmp_path / "bundle", bundle.release, bundle.architecture)
    assert missing.returncode == 1 and "SHA256SUMS is missing" in missing.stderr


@pytest.mark.skipif(shutil.which("vagrant") is None, reason="needs the vagrant CLI")
def test_vagrant_adds_a_bundles_box_from_its_catalog_offline(tmp_path: Path) -> None:
    """The real vagrant CLI: a box packed the way `lab bundle` packs it, added back from
    the catalog `lab up --bundle` writes (file URL, sha256), name and version recorded."""
    unpacked = tmp_path / "unpacked"
    unpacked.mkdir()
    (unpacked / "metadata.json").write_text(json.dumps({"provider": "libvirt", "format":
                                                        "qcow2", "virtual_size": 1}))
    (unpacked / "box.img").write_bytes(b"\0" * 4096)
    (unpacked / "Vagrantfile").write_text("Vagrant.configure('2') { |c| }\n")
    folder = tmp_path / "bundle"
    folder.mkdir()
    relative = pack_box(unpacked, folder, "mcast-lab/bundle-test", "1.2.3", "libvirt")
    bundle = Bundle(folder, "x", "y", {relative: sha256_of(folder / relative)},
                    box={"name": "mcast-lab/bundle-test", "version": "1.2.3",
                         "provider": "libvirt", "file": relative})
    catalog = tmp_path / "catalog.json"
    catalog.write_text(json.dumps(bundle_box_catalog(bundle)))
    home = tmp_path / "vagrant-home"
    env = {**os.environ, "VAGRANT_HOME": str(home), "VAGRANT_CHECKPOINT_DISABLE": "1"}
    # In a folder of its own: Vagrant keeps local data beside where it runs (and the
    # repository's .vagrant may belong to another user).
    added = subprocess.run(["vagrant", "box", "add", str(catalog)], capture_output=True,
                           text=True, timeout=300, env=env, cwd=tmp_path)
    assert added.returncode == 0, added.stdout + added.stderr
    found = box_dir("mcast-lab/bundle-test", "1.2.3", "libvirt", home)
    assert found is not None and (found / "box.img").read_bytes() == b"\0" * 4096
    assert tree_sha256(found) == tree_sha256(unpacked)  # the lock's box sha256 is the same
    # A wrong checksum is refused by Vagrant itself.
    bad = bundle_box_catalog(bundle)
    bad["versions"][0]["version"] = "1.2.4"
    bad["versions"][0]["providers"][0]["checksum"] = "0" * 64
    catalog.write_text(json.dumps(bad))
    refused = subprocess.run(["vagrant", "box", "add", str(catalog)], capture_output=True,
                             text=True, timeout=300, env=env, cwd=tmp_path)
    assert refused.returncode != 0
    assert "checksum" in (refused.stdout + refused.stderr).lower()


def test_what_a_lab_downloaded_is_read_from_its_listing() -> None:
    from lab.bundle.from_lab import image_file, listing

    found = listing("deb\t/var/cache/apt/archives/kubelet_1.36.3-1.1_amd64.deb\n"
                    "fetch\thttps://example.invalid/kube-flannel.yml\t" + "a" * 64 + "\n"
                    "release\tnoble\narch\tarm64\nimage\tregistry.k8s.io/pause:3.10.2\n")
    assert found.debs == ["/var/cache/apt/archives/kubelet_1.36.3-1.1_amd64.deb"]
    assert found.fetched == {"https://example.invalid/kube-flannel.yml": "a" * 64}
    assert (found.release, found.arch) == ("noble", "arm64")
    assert found.images == ["registry.k8s.io/pause:3.10.2"]
    assert image_file("registry.k8s.io/pause:3.10.2") == "registry.k8s.io_pause_3.10.2.tar"
    assert image_file("ghcr.io/flannel-io/flannel:v0.27.4") == \
        "ghcr.io_flannel-io_flannel_v0.27.4.tar"

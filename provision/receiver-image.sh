#!/usr/bin/env bash
# The receiver pods' image, built on this node from its own iperf (the distribution's, as on
# the source VM: both ends run the same iperf) and busybox, imported into containerd. No
# registry is involved (thirty laptops behind one NAT hit pull limits) and it is built for
# whatever architecture the node is. Skipped when lab.yaml names an image to pull instead.
set -euo pipefail
: "${LAB_RECEIVER_IMAGE:=}"
if [[ -z "$LAB_RECEIVER_IMAGE" ]]; then
    echo "kubernetes.iperf_image names an image to pull: nothing to build"
    exit 0
fi
if ! command -v busybox >/dev/null; then
    lab_apt_update
    lab_apt_install busybox-static
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
lab_rootfs "$work/rootfs"
lab_image_archive "$work/rootfs" "$LAB_RECEIVER_IMAGE" "$work/image.tar"
ctr -n k8s.io images import "$work/image.tar"
images=$(ctr -n k8s.io images ls -q)  # whole: `| grep -q` could cut ctr off (pipefail)
grep -qF -- "$LAB_RECEIVER_IMAGE" <<<"$images" ||
    lab_fail 1 "containerd does not list $LAB_RECEIVER_IMAGE after importing it"
echo "$LAB_RECEIVER_IMAGE: $(iperf --version 2>&1 | head -n 1), $(dpkg --print-architecture)"

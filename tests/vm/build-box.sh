#!/usr/bin/env bash
# Builds the small libvirt test box used by the real-VM tests, from Debian packages only:
# debootstrap (openssh-server, sudo, iperf, tcpdump, iproute2, ifupdown, a DHCP client, a kernel),
# a raw ext4 disk made with `mkfs.ext4 -d`, converted to qcow2, booted by direct kernel
# boot (so no boot loader). Cached in OUT: rebuilt only when this script changes.
#   tests/vm/build-box.sh OUT_DIR
set -euo pipefail
out=${1:?usage: build-box.sh OUT_DIR}
mirror=${LAB_DEBIAN_MIRROR:-http://deb.debian.org/debian}
stamp=$(sha256sum "$0" | cut -c1-16)
if [[ -f "$out/stamp" && "$(cat "$out/stamp")" == "$stamp" ]]; then
    echo "box cached in $out"
    exit 0
fi
rm -rf "$out"
mkdir -p "$out"
work=$(mktemp -d "$out/.build.XXXXXX")
trap 'umount -R "$work/rootfs/proc" 2>/dev/null || true; rm -rf "$work"' EXIT
rootfs="$work/rootfs"

debootstrap --variant=minbase \
    --include=systemd-sysv,udev,openssh-server,sudo,iperf,tcpdump,iproute2,ifupdown,isc-dhcp-client,linux-image-cloud-amd64,procps,kmod,ca-certificates \
    bookworm "$rootfs" "$mirror" >"$work/debootstrap.log" 2>&1 || {
    tail -20 "$work/debootstrap.log" >&2; exit 1; }

echo mcast-lab-box > "$rootfs/etc/hostname"
printf '/dev/vda / ext4 defaults 0 1\n' > "$rootfs/etc/fstab"
# eth0 is Vagrant's management NIC (DHCP from libvirt); Vagrant configures the lab NIC.
cat > "$rootfs/etc/network/interfaces" <<'IFACES'
auto lo
iface lo inet loopback
auto eth0
iface eth0 inet dhcp
IFACES
chroot "$rootfs" useradd -m -s /bin/bash vagrant
echo 'vagrant ALL=(ALL) NOPASSWD: ALL' > "$rootfs/etc/sudoers.d/vagrant"
chmod 440 "$rootfs/etc/sudoers.d/vagrant"
install -d -m 700 -o 1000 -g 1000 "$rootfs/home/vagrant/.ssh"
# Vagrant's well-known insecure key: Vagrant logs in with it once and replaces it per machine.
key=$( (find /usr/share/rubygems-integration /usr/lib/ruby /opt/vagrant -name vagrant.pub \
        -path '*keys*' 2>/dev/null || true) | head -n 1)
[[ -n "$key" ]] || { echo "vagrant's keys/vagrant.pub not found: install vagrant first" >&2; exit 1; }
install -m 600 -o 1000 -g 1000 "$key" "$rootfs/home/vagrant/.ssh/authorized_keys"
echo 'UseDNS no' > "$rootfs/etc/ssh/sshd_config.d/vagrant.conf"
# The host keys debootstrap generated are shared by every VM of this box: regenerate at boot.
rm -f "$rootfs"/etc/ssh/ssh_host_*
cat > "$rootfs/etc/systemd/system/ssh-keygen.service" <<'UNIT'
[Unit]
Description=Generate SSH host keys
Before=ssh.service
[Service]
Type=oneshot
ExecStart=/usr/bin/ssh-keygen -A
[Install]
WantedBy=multi-user.target
UNIT
chroot "$rootfs" systemctl enable ssh-keygen.service >/dev/null 2>&1
chroot "$rootfs" apt-get clean

cp "$rootfs"/boot/vmlinuz-* "$out/vmlinuz"
cp "$rootfs"/boot/initrd.img-* "$out/initrd.img"
chmod 644 "$out/vmlinuz" "$out/initrd.img"
truncate -s 3G "$work/disk.raw"
mkfs.ext4 -q -F -L root -d "$rootfs" "$work/disk.raw"
qemu-img convert -f raw -O qcow2 "$work/disk.raw" "$out/box.img"
printf '{"provider": "libvirt", "format": "qcow2", "virtual_size": 3}\n' > "$out/metadata.json"
tar -C "$out" -czf "$out/test.box" metadata.json box.img
rm -f "$out/box.img"
echo "$stamp" > "$out/stamp"
echo "box built in $out"

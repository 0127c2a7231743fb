# shellcheck shell=bash
# What the test suite leaves on this machine to be faster next time, found in one place for
# scripts/test (which reports it) and scripts/clean-cache (which removes it):
#  - /var/cache/mcast-lab, where test_vm_lab.py has tests/vm/build-box.sh build the box (in
#    box/, or in LAB_TEST_BOX_DIR when that is set); LAB_CACHE_DIR points these two scripts
#    at another folder (their tests do);
#  - the Vagrant box test_vm_lab.py adds (`vagrant box add --name mcast-lab/debian-12-test`),
#    a folder under VAGRANT_HOME;
#  - that box's images, which vagrant-libvirt uploads into libvirt's default pool as
#    <box, / spelt -VAGRANTSLASH->_vagrant_box_image_<version>_box.img (a new one each time
#    the box is added again) and which `vagrant box remove` leaves there.
cache_dir=${LAB_CACHE_DIR:-/var/cache/mcast-lab}
box_name=mcast-lab/debian-12-test
box_escaped=${box_name//\//-VAGRANTSLASH-}
box_dir=${VAGRANT_HOME:-${HOME:-/root}/.vagrant.d}/boxes/$box_escaped
volume_prefix=${box_escaped}_vagrant_box_image_
pool=default
# Where the pool's files are when libvirtd is not running (CI stops it after the VM test).
pool_xml=${LAB_LIBVIRT_POOL_XML:-/etc/libvirt/storage/$pool.xml}

# Never empty: `read` would merge an empty field with the next (tab is IFS whitespace).
_cache_size() { du -sh -- "$1" 2>/dev/null | cut -f1 | grep . || echo "?"; }

_virsh() { timeout 30 virsh -c qemu:///system "$@"; }

# The box's volumes as "NAME<TAB>PATH": through libvirtd when it answers, else the files in
# the pool's folder (NAME "-": removed as files; libvirt rescans the pool when it starts).
_box_volumes() {
    local name path dir
    if command -v virsh >/dev/null 2>&1 && _virsh -q version >/dev/null 2>&1; then
        _virsh -q vol-list --pool "$pool" 2>/dev/null | while read -r name path; do
            [[ $name == "$volume_prefix"* ]] && printf '%s\t%s\n' "$name" "$path"
        done
        return 0
    fi
    [[ -f $pool_xml ]] || return 0
    dir=$(sed -n 's:.*<path>\(.*\)</path>.*:\1:p' "$pool_xml" | head -n 1)
    [[ -n $dir ]] || return 0
    for path in "$dir/$volume_prefix"*; do
        [[ -e $path ]] && printf -- '-\t%s\n' "$path"
    done
    return 0
}

# One line a cache, "KIND<TAB>SIZE<TAB>TARGET<TAB>WHAT": KIND is dir, vagrant-box,
# libvirt-volume (TARGET: the volume's name) or libvirt-file (TARGET: its path).
list_caches() {
    local box_build=${LAB_TEST_BOX_DIR:-}
    if [[ -e $cache_dir ]]; then
        printf 'dir\t%s\t%s\t%s\n' "$(_cache_size "$cache_dir")" "$cache_dir" \
            "tests/vm/build-box.sh's box and its build"
    fi
    if [[ -n $box_build && $box_build != "$cache_dir"/* && -e $box_build ]]; then
        printf 'dir\t%s\t%s\t%s\n' "$(_cache_size "$box_build")" "$box_build" \
            "tests/vm/build-box.sh's box (LAB_TEST_BOX_DIR)"
    fi
    if [[ -d $box_dir ]]; then
        printf 'vagrant-box\t%s\t%s\t%s\n' "$(_cache_size "$box_dir")" "$box_name" \
            "Vagrant box, in $box_dir"
    fi
    local name path
    _box_volumes | while IFS=$'\t' read -r name path; do
        if [[ $name != - ]]; then
            printf 'libvirt-volume\t%s\t%s\t%s\n' "$(_cache_size "$path")" "$name" \
                "the box's image in libvirt pool $pool, $path"
        else
            printf 'libvirt-file\t%s\t%s\t%s\n' "$(_cache_size "$path")" "$path" \
                "the box's image in libvirt pool $pool (libvirtd not running)"
        fi
    done
}

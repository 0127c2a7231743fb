# shellcheck shell=bash
# Sent before every step's script (the engine joins them; a change here reruns every step).
# Exit statuses a step may end with, read by lab/remote/provision.py:
#   75  transient: retried until the step's retry_for (a lock held, a mirror hiccup)
#   76  no way out: this VM reaches no network it needs; never retried, said in one line
#   anything else: a failure, not retried
# A line "cause: ..." on stderr is what `lab` shows as the reason.

LAB_APT=(apt-get -q -y -o DPkg::Lock::Timeout=300 -o Acquire::Retries=3)
export DEBIAN_FRONTEND=noninteractive
# With an offline bundle (`lab up --bundle`, made ready by the bundle step): apt reads the
# bundle's packages only (its own source list and lists, no sources.list.d), and lab_fetch
# copies from it; nothing reaches the network.
if [[ -n "${LAB_BUNDLE:-}" ]]; then
    LAB_APT+=(-o "Dir::Etc::SourceList=$LAB_BUNDLE/apt/sources.list"
        -o "Dir::Etc::SourceParts=$LAB_BUNDLE/apt/sources.d"
        -o "Dir::State::Lists=$LAB_BUNDLE/apt/lists"
        -o "Dir::Cache::pkgcache=" -o "Dir::Cache::srcpkgcache=")  # the host's own cache stays
fi

lab_fail() {  # STATUS CAUSE...
    local status=$1
    shift
    echo "cause: $*" >&2
    exit "$status"
}

# Network errors that mean "this VM has no way out" (no name resolution, no route), as apt
# and curl word them. A refused or timed-out connection may pass: those are retried.
LAB_NO_NETWORK='Temporary failure resolving|Could not resolve|Network is unreachable|No route to host|Resolving timed out'

lab_apt_update() {
    local out status=0
    # apt-get update exits 0 when every mirror failed (it only warns): read what it said.
    out=$("${LAB_APT[@]}" update 2>&1) || status=$?
    printf '%s\n' "$out"
    if grep -Eq 'Could not get lock|Unable to lock' <<<"$out"; then
        # The lists lock (apt-daily at first boot): DPkg::Lock::Timeout does not cover it.
        lab_fail 75 "apt's lists are locked by another apt: $(grep -E '^E: ' <<<"$out" | head -n 1)"
    fi
    if grep -Eq "$LAB_NO_NETWORK" <<<"$out" && ! grep -Eq '^(Hit|Get):' <<<"$out"; then
        lab_fail 76 "apt reaches none of its mirrors: $(grep -Eo "($LAB_NO_NETWORK)[^\"]*" <<<"$out" | head -n 1)"
    fi
    if grep -Eq '^(W|E): (Failed to fetch|Some index files failed)' <<<"$out"; then
        lab_fail 75 "apt could not fetch every index: $(grep -E '^(W|E): ' <<<"$out" | head -n 1)"
    fi
    if [[ $status -ne 0 ]]; then
        lab_fail 1 "apt-get update failed: $(grep -E '^E: ' <<<"$out" | head -n 1)"
    fi
}

lab_pinned() {  # PACKAGE: PACKAGE=VERSION when lab.lock pins it (`lab up --locked`)
    local - pin
    set -f  # the pins are split on spaces, never globbed
    for pin in ${LAB_LOCKED:-}; do
        if [[ "${pin%%=*}" == "$1" ]]; then
            echo "$pin"
            return
        fi
    done
    echo "$1"
}

lab_apt_install() {  # PACKAGE...
    local out status=0 wanted=() arg
    for arg in "$@"; do
        # An option or a version given by the step stays as it is.
        if [[ "$arg" == -* || "$arg" == *=* ]]; then wanted+=("$arg"); else wanted+=("$(lab_pinned "$arg")"); fi
    done
    set -- "${wanted[@]}"
    out=$("${LAB_APT[@]}" install "$@" 2>&1) || status=$?
    printf '%s\n' "$out"
    [[ $status -eq 0 ]] && return 0
    if grep -Eq "$LAB_NO_NETWORK|Failed to fetch|Could not get lock|Unable to acquire" <<<"$out"; then
        lab_fail 75 "apt-get install $* failed for now: $(grep -E '^E: ' <<<"$out" | head -n 1)"
    fi
    lab_fail 1 "apt-get install $* failed: $(grep -E '^E: ' <<<"$out" | head -n 1)"
}

lab_fetch() {  # URL FILE: a download, retried by the engine unless the VM has no way out
    local err copy
    if [[ -n "${LAB_BUNDLE:-}" ]]; then
        copy=$(awk -F '\t' -v url="$1" '$1 == url { print $2 }' "$LAB_BUNDLE/downloads.tsv" 2>/dev/null || true)
        [[ -n "$copy" && -f "$LAB_BUNDLE/$copy" ]] ||
            lab_fail 1 "the bundle has no copy of $1: make the bundle again from a lab whose steps fetched it"
        cp "$LAB_BUNDLE/$copy" "$2"
        lab_fetched "$1" "$2"
        return 0
    fi
    if err=$(curl -fsSL --retry 2 --connect-timeout 10 --max-time 120 "$1" -o "$2" 2>&1); then
        lab_fetched "$1" "$2"
        return 0
    fi
    if grep -Eq "$LAB_NO_NETWORK|\(6\)" <<<"$err"; then
        lab_fail 76 "cannot download $1: ${err##*curl: }"
    fi
    if grep -Eq 'returned error: 4[0-9][0-9]' <<<"$err"; then
        # Not there (a version that does not exist): retrying will not make it appear.
        lab_fail 1 "$1 does not exist: ${err##*curl: }"
    fi
    lab_fail 75 "download of $1 failed: ${err##*curl: }"
}

lab_fetched() {  # URL FILE: recorded for lab.lock; with a lock, a changed file is refused
    local - sum
    set -f  # the lock's URLs are split on spaces, never globbed
    sum=$(sha256sum "$2" | cut -d ' ' -f 1)
    if [[ -n "${LAB_STATE_DIR:-}" ]]; then
        # The copy is what `lab bundle` gathers from a lab that is up.
        mkdir -p "$LAB_STATE_DIR/downloads.d"
        cp "$2" "$LAB_STATE_DIR/downloads.d/$sum"
        printf '%s\t%s\n' "$1" "$sum" >> "$LAB_STATE_DIR/downloads"
    fi
    # LAB_LOCKED_FETCH: "URL SHA256 URL SHA256 ..." from lab.lock's downloads (split on
    # purpose: URLs and digests hold no spaces).
    # shellcheck disable=SC2086
    set -- "$1" "$sum" ${LAB_LOCKED_FETCH:-}
    local url=$1 got=$2
    shift 2
    while (($# >= 2)); do
        if [[ "$1" == "$url" && "$2" != "$got" ]]; then
            lab_fail 1 "$url changed since lab.lock was written: sha256 $got, the lock says $2"
        fi
        shift 2
    done
}

lab_containerd_config() {  # MAJOR PAUSE_IMAGE < default config > the lab's config
    # The systemd cgroup driver (kubeadm's default for the kubelet), and the sandbox
    # (pause) image kubeadm wants, in the key of the installed major: containerd 2.x
    # (config version 3) `[plugins.'io.containerd.cri.v1.images'.pinned_images] sandbox`,
    # containerd 1.x `[plugins."io.containerd.grpc.v1.cri"] sandbox_image`.
    local major=$1 pause=$2 config
    config=$(sed 's/SystemdCgroup = false/SystemdCgroup = true/')
    if [[ "$major" -ge 2 ]]; then
        config=$(sed -E "s|^([[:space:]]*sandbox = ).*|\\1'${pause}'|" <<<"$config")
        grep -q "^[[:space:]]*sandbox = '${pause}'" <<<"$config" ||
            lab_fail 1 "containerd $major's default config has no pinned_images sandbox key"
    else
        config=$(sed -E "s|^([[:space:]]*sandbox_image = ).*|\\1\"${pause}\"|" <<<"$config")
        grep -q "^[[:space:]]*sandbox_image = \"${pause}\"" <<<"$config" ||
            lab_fail 1 "containerd $major's default config has no sandbox_image key"
    fi
    grep -q 'SystemdCgroup = true' <<<"$config" ||
        lab_fail 1 "containerd $major's default config has no SystemdCgroup key"
    printf '%s\n' "$config"
}

lab_copy_binary() {  # FILE DIR TARGET: a program and every library it links, into DIR
    local file=$1 dir=$2 target=$3 lib
    mkdir -p "$dir$(dirname "$target")"
    cp "$file" "$dir$target"
    # A static program has none ("not a dynamic executable").
    for lib in $(ldd "$file" 2>/dev/null | grep -Eo '/[^ ]+' || true); do
        mkdir -p "$dir$(dirname "$lib")"
        cp -L "$lib" "$dir$lib"
    done
}

lab_rootfs() {  # DIR: this host's iperf and busybox's basic tools, with what they link
    local dir=$1 iperf busybox tool
    iperf=$(command -v iperf) || lab_fail 1 "no iperf on this host to put in the image"
    busybox=$(command -v busybox) || lab_fail 1 "no busybox on this host to put in the image"
    mkdir -p "$dir/tmp"
    lab_copy_binary "$iperf" "$dir" /usr/bin/iperf
    lab_copy_binary "$busybox" "$dir" /bin/busybox
    for tool in sh sleep cat ls ip; do ln -sf busybox "$dir/bin/$tool"; done
}

lab_image_archive() {  # ROOTFS NAME:TAG OUT.tar: a one-layer image as `ctr images import` takes
    local rootfs=$1 ref=$2 out=$3 work diff config arch
    work=$(mktemp -d)
    tar -C "$rootfs" --numeric-owner --owner=0 --group=0 -cf "$work/layer.tar" .
    diff=$(sha256sum "$work/layer.tar" | cut -d' ' -f1)
    arch=$(dpkg --print-architecture)  # amd64, arm64: the names OCI uses too
    printf '{"architecture":"%s","os":"linux","config":{"Cmd":["/bin/sleep","3600"],"Env":["PATH=/usr/bin:/bin"]},"rootfs":{"type":"layers","diff_ids":["sha256:%s"]}}\n' \
        "$arch" "$diff" > "$work/config.json"
    config=$(sha256sum "$work/config.json" | cut -d' ' -f1)
    mv "$work/config.json" "$work/$config.json"
    mkdir "$work/$diff"
    mv "$work/layer.tar" "$work/$diff/layer.tar"
    printf '[{"Config":"%s.json","RepoTags":["%s"],"Layers":["%s/layer.tar"]}]\n' \
        "$config" "$ref" "$diff" > "$work/manifest.json"
    tar -C "$work" -cf "$out" manifest.json "$config.json" "$diff"
    rm -rf "$work"
}

lab_kubelet_node_ip() {  # ADDRESS: the kubelet's node IP, the lab address (not the NAT NIC's)
    # A changed file takes effect only when the kubelet restarts; before kubeadm init or
    # join configures it, the kubelet restarts in a loop anyway.
    local args="KUBELET_EXTRA_ARGS=--node-ip=$1" file=${LAB_KUBELET_DEFAULTS:-/etc/default/kubelet}
    if [[ "$(cat "$file" 2>/dev/null || true)" != "$args" ]]; then
        echo "$args" > "$file"
        systemctl restart kubelet || true
    fi
}

lab_bundle_images() {  # the bundle's container images into the node's containerd
    local image
    [[ -n "${LAB_BUNDLE:-}" ]] || return 0
    for image in "$LAB_BUNDLE"/images/*.tar; do
        [[ -e "$image" ]] || continue
        # The node's platform only: containerd 1.6/1.7 otherwise also wants the other
        # platforms an exported index lists, which an export of one platform lacks.
        ctr -n k8s.io images import --platform "linux/$(dpkg --print-architecture)" "$image" ||
            lab_fail 1 "containerd could not import $image from the bundle"
    done
}

lab_ca_hash() {  # CERT: sha256:HEX of its public key, as kubeadm's discovery hash says it
    local hex
    hex=$(set -o pipefail; openssl x509 -pubkey -noout -in "$1" 2>/dev/null |
        openssl pkey -pubin -outform der 2>/dev/null | sha256sum | cut -d ' ' -f 1) || return 1
    echo "sha256:$hex"
}

#!/usr/bin/env bash
# kubelet, kubeadm, kubectl from pkgs.k8s.io (one repository per minor), pinned and held.
# Done when all three are installed at the pinned version and held, not when kubeadm is.
set -euo pipefail
: "${LAB_K8S_MINOR:?}" "${LAB_K8S_PACKAGE_VERSION:?}"
want="$LAB_K8S_PACKAGE_VERSION"
installed() {
    local pkg
    for pkg in kubelet kubeadm kubectl; do
        [[ "$(dpkg-query -W -f='${Version} ${Status}' "$pkg" 2>/dev/null || true)" == \
            "$want hold ok installed" ]] || return 1
    done
}
if installed; then
    echo "kubelet, kubeadm, kubectl $want present and held"
    exit 0
fi
repo="https://pkgs.k8s.io/core:/stable:/v${LAB_K8S_MINOR}/deb/"
lab_apt_update
lab_apt_install apt-transport-https ca-certificates curl gpg
mkdir -p /etc/apt/keyrings
lab_fetch "${repo}Release.key" /tmp/kubernetes-release.key
gpg --dearmor --yes -o /etc/apt/keyrings/kubernetes-apt-keyring.gpg /tmp/kubernetes-release.key
echo "deb [signed-by=/etc/apt/keyrings/kubernetes-apt-keyring.gpg] $repo /" \
    > /etc/apt/sources.list.d/kubernetes.list
lab_apt_update
apt-mark unhold kubelet kubeadm kubectl >/dev/null 2>&1 || true
lab_apt_install --allow-downgrades "kubelet=$want" "kubeadm=$want" "kubectl=$want"
apt-mark hold kubelet kubeadm kubectl >/dev/null
installed || lab_fail 1 "kubelet, kubeadm, kubectl are not all at $want and held"
kubeadm version -o short

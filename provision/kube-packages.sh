#!/usr/bin/env bash
# kubelet, kubeadm, kubectl from pkgs.k8s.io (one repository per minor), pinned and held.
set -euo pipefail
: "${LAB_K8S_MINOR:?}" "${LAB_K8S_PACKAGE_VERSION:?}"
export DEBIAN_FRONTEND=noninteractive
want="$LAB_K8S_PACKAGE_VERSION"
if [[ "$(dpkg-query -W -f='${Version}' kubeadm 2>/dev/null || true)" == "$want" ]]; then
    echo "kubeadm $want present"
    exit 0
fi
if fuser /var/lib/dpkg/lock-frontend >/dev/null 2>&1; then exit 75; fi
apt-get update -qq || exit 75
apt-get install -y -qq apt-transport-https ca-certificates curl gpg
repo="https://pkgs.k8s.io/core:/stable:/v${LAB_K8S_MINOR}/deb/"
mkdir -p /etc/apt/keyrings
curl -fsSL "${repo}Release.key" | gpg --dearmor --yes -o /etc/apt/keyrings/kubernetes-apt-keyring.gpg
echo "deb [signed-by=/etc/apt/keyrings/kubernetes-apt-keyring.gpg] $repo /" > /etc/apt/sources.list.d/kubernetes.list
apt-get update -qq || exit 75
apt-mark unhold kubelet kubeadm kubectl >/dev/null 2>&1 || true
apt-get install -y -qq --allow-downgrades "kubelet=$want" "kubeadm=$want" "kubectl=$want"
apt-mark hold kubelet kubeadm kubectl >/dev/null
kubeadm version -o short

#!/usr/bin/env bash
# A single-node cluster on the lab NIC: the API server and the kubelet use the lab
# address, never the NAT NIC's 10.0.2.15 (the same on every VirtualBox VM).
set -euo pipefail
: "${LAB_ADDRESS:?}" "${LAB_POD_SUBNET:?}" "${LAB_NODE_NAME:?}" "${LAB_USER:=vagrant}"
echo "KUBELET_EXTRA_ARGS=--node-ip=$LAB_ADDRESS" > /etc/default/kubelet
if [[ ! -f /etc/kubernetes/admin.conf ]]; then
    kubeadm init --apiserver-advertise-address="$LAB_ADDRESS" \
        --pod-network-cidr="$LAB_POD_SUBNET" --node-name="$LAB_NODE_NAME"
fi
export KUBECONFIG=/etc/kubernetes/admin.conf
home=$(getent passwd "$LAB_USER" | cut -d: -f6)
install -d -o "$LAB_USER" -g "$LAB_USER" "$home/.kube"
install -m 600 -o "$LAB_USER" -g "$LAB_USER" /etc/kubernetes/admin.conf "$home/.kube/config"
# Modern kubeadm taints the node control-plane (not master): pods must run here.
kubectl taint nodes "$LAB_NODE_NAME" node-role.kubernetes.io/control-plane:NoSchedule- \
    >/dev/null 2>&1 || true
kubectl get node "$LAB_NODE_NAME" -o wide

#!/usr/bin/env bash
# A single-node cluster on the lab NIC: the API server and the kubelet use the lab
# address, never the NAT NIC's 10.0.2.15 (the same on every VirtualBox VM).
# Done is decided by the API answering /readyz, not by a file kubeadm writes early: a
# failed init leaves admin.conf behind, so a rerun resets and starts over.
set -euo pipefail
: "${LAB_ADDRESS:?}" "${LAB_POD_SUBNET:?}" "${LAB_NODE_NAME:?}" "${LAB_PAUSE_IMAGE:?}"
: "${LAB_STATE_DIR:?}"
: "${LAB_USER:=vagrant}" "${LAB_API_WAIT_S:=120}"
export KUBECONFIG=/etc/kubernetes/admin.conf
version=$(kubeadm version -o short)

lab_kubelet_node_ip "$LAB_ADDRESS"

# The sandbox image containerd was given (containerd step) must be the one kubeadm wants.
wanted=$(kubeadm config images list --kubernetes-version "$version" 2>/dev/null | grep '/pause:' || true)
if [[ -n "$wanted" && "$wanted" != "$LAB_PAUSE_IMAGE" ]]; then
    lab_fail 1 "kubeadm $version wants the sandbox image $wanted, containerd was set to $LAB_PAUSE_IMAGE: set kubernetes.pause_image in lab.yaml to $wanted"
fi

api_ready() { kubectl --request-timeout=5s get --raw=/readyz >/dev/null 2>&1; }
wait_api() {  # SECONDS
    local deadline=$((SECONDS + $1))
    until api_ready; do
        ((SECONDS < deadline)) || return 1
        sleep 3
    done
}

if [[ -f /etc/kubernetes/admin.conf ]] && wait_api "$LAB_API_WAIT_S"; then
    echo "control plane answers /readyz"
else
    if [[ -e /etc/kubernetes/admin.conf || -e /etc/kubernetes/manifests/kube-apiserver.yaml ]]; then
        echo "a previous kubeadm init did not finish: kubeadm reset -f" >&2
        kubeadm reset -f
        # The reset wiped what later steps applied (flannel, Multus): they run again.
        rm -f "$LAB_STATE_DIR/steps/flannel" "$LAB_STATE_DIR/steps/multus"
    fi
    if [[ -n "${LAB_BUNDLE:-}" ]]; then
        echo "control-plane images from the bundle (imported by the containerd step)"
    elif ! out=$(kubeadm config images pull --kubernetes-version "$version" 2>&1); then
        printf '%s\n' "$out" >&2
        if grep -Eq "$LAB_NO_NETWORK|no such host|network is unreachable" <<<"$out"; then
            lab_fail 76 "cannot pull the control-plane images: $(grep -Eo '(dial tcp|lookup)[^"]*' <<<"$out" | head -n 1)"
        fi
        lab_fail 75 "pulling the control-plane images failed: $(tail -n 1 <<<"$out")"
    fi
    kubeadm init --kubernetes-version "$version" --apiserver-advertise-address="$LAB_ADDRESS" \
        --pod-network-cidr="$LAB_POD_SUBNET" --node-name="$LAB_NODE_NAME"
    wait_api 300 || lab_fail 1 "kubeadm init ended but the API does not answer /readyz"
fi
home=$(getent passwd "$LAB_USER" | cut -d: -f6)
install -d -o "$LAB_USER" -g "$LAB_USER" "$home/.kube"
install -m 600 -o "$LAB_USER" -g "$LAB_USER" /etc/kubernetes/admin.conf "$home/.kube/config"
# Modern kubeadm taints the node control-plane (not master): pods must run here.
kubectl taint nodes "$LAB_NODE_NAME" node-role.kubernetes.io/control-plane:NoSchedule- \
    >/dev/null 2>&1 || true
kubectl get node "$LAB_NODE_NAME" -o wide

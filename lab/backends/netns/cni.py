"""Executing CNI plugins the way Multus (and the container runtime) do: config on stdin,
parameters in CNI_* variables, run in the node's network namespace."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from lab import command
from lab.backends.netns.netlink import in_netns
from lab.errors import BackendError

# Debian's containernetworking-plugins installs here, Fedora's in /usr/libexec/cni; the
# upstream tarball (and Kubernetes' kubernetes-cni package) uses /opt/cni/bin.
CNI_DIRS = (Path("/usr/lib/cni"), Path("/usr/libexec/cni"), Path("/opt/cni/bin"))
CNI_TIMEOUT_S = 30.0


def plugin_dir(required: tuple[str, ...] = ("macvlan", "bridge", "host-local")) -> Path:
    override = os.environ.get("LAB_CNI_PATH")
    candidates = (Path(override),) if override else CNI_DIRS
    for folder in candidates:
        if all((folder / plugin).is_file() for plugin in required):
            return folder
    looked = ", ".join(str(c) for c in candidates)
    raise BackendError(f"CNI plugins {', '.join(required)} not found in {looked}; install "
                       "them with: apt-get install containernetworking-plugins")


def add(config: dict[str, Any], *, node_netns: str, pod_netns: str, ifname: str,
        container_id: str) -> dict[str, Any]:
    """CNI ADD: the interface made in the pod; returns the plugin's result."""
    out = _execute("ADD", config, node_netns=node_netns, pod_netns=pod_netns, ifname=ifname,
                   container_id=container_id)
    result: dict[str, Any] = json.loads(out)
    return result


def delete(config: dict[str, Any], *, node_netns: str, pod_netns: str, ifname: str,
           container_id: str) -> None:
    """CNI DEL with the config ADD was given: the interface and its address lease go."""
    _execute("DEL", config, node_netns=node_netns, pod_netns=pod_netns, ifname=ifname,
             container_id=container_id)


def _execute(cni_command: str, config: dict[str, Any], *, node_netns: str, pod_netns: str,
             ifname: str, container_id: str) -> str:
    """Run the plugin named by `config["type"]` with `cni_command`; its stdout.

    The plugin runs inside the node's namespace because a macvlan's master must be in the
    namespace the plugin starts in; it is started from a thread inside that namespace
    (one process, not `ip netns exec` and then the plugin).
    """
    folder = plugin_dir()
    env = {
        **os.environ,
        "CNI_COMMAND": cni_command,
        "CNI_CONTAINERID": container_id,
        "CNI_NETNS": f"/var/run/netns/{pod_netns}",
        "CNI_IFNAME": ifname,
        "CNI_PATH": str(folder),
    }
    plugin = str(folder / config["type"])
    result = in_netns(node_netns, lambda: command.run(
        [plugin], timeout=CNI_TIMEOUT_S, input=json.dumps(config), env=env, check=False,
        what=f"CNI {cni_command} {config['name']} ({config['type']}) for {pod_netns}",
        where=node_netns))
    if not result.ok:
        # A CNI plugin reports errors as JSON on stdout: {"code": N, "msg": "..."}
        detail = result.stdout.strip() or result.stderr.strip()
        try:
            parsed = json.loads(result.stdout)
            detail = parsed.get("msg", detail) + (f": {parsed['details']}"
                                                  if parsed.get("details") else "")
        except (ValueError, AttributeError):
            pass
        raise BackendError(f"CNI {cni_command} of {config['name']!r} ({config['type']}) for "
                           f"{pod_netns} failed (exit status {result.exit_status}): {detail}")
    return result.stdout

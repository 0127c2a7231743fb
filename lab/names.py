"""Every name the lab gives to something outside `lab` itself: namespaces, IPAM folders,
libvirt networks and domains, Kubernetes pods and labels, files under `.lab/`.

Cleanup relies on these: `lab destroy` and the tests find what a lab made by these names,
and two labs with different names never share one. So they are made here and only here.
"""

from __future__ import annotations

from pathlib import Path

# -- on this machine, per lab ------------------------------------------------------------


def lab_dir(project_dir: Path, lab: str) -> Path:
    """`.lab/<lab>/`: state file, lock, logs, the Vagrantfile's input, Vagrant's machines."""
    return project_dir / ".lab" / lab


def state_file(project_dir: Path, lab: str) -> Path:
    return lab_dir(project_dir, lab) / "state.json"


def logs_dir(project_dir: Path, lab: str) -> Path:
    return lab_dir(project_dir, lab) / "logs"


def vagrant_input_file(project_dir: Path, lab: str) -> Path:
    """What the Vagrantfile reads (LAB_VAGRANT_JSON)."""
    return lab_dir(project_dir, lab) / "vagrant.json"


def vagrant_dotfile_dir(project_dir: Path, lab: str) -> Path:
    """Vagrant's own record of the machines (VAGRANT_DOTFILE_PATH): one per lab, so two labs
    of one project (same host names) are different machines to Vagrant."""
    return lab_dir(project_dir, lab) / "vagrant"


# -- network namespaces (netns backend) ---------------------------------------------------


def host_netns(lab: str, host: str) -> str:
    return f"{lab}-{host}"


def pod_netns(lab: str, pod: str) -> str:
    return f"{lab}-pod-{pod}"


def switch_netns(lab: str) -> str:
    """The namespace holding the lab network's bridge when there are more than two hosts."""
    return f"{lab}-lan"


def ipam_dir_name(lab: str) -> str:
    """host-local's dataDir folder: one per lab, so destroy removes exactly its leases."""
    return f"lab-{lab}"


# Set in the environment of every background process the lab starts in a namespace: the
# namespace's name, so a leak check can tell this lab's processes from any other.
OWNER_ENV = "MCAST_LAB_NETNS"

# -- on the lab's VMs ----------------------------------------------------------------------

# Step markers, the lab NIC's name and what steps leave for later steps (provisioning).
VM_STATE_DIR = "/var/lib/mcast-lab"

# -- libvirt (vagrant backend) ------------------------------------------------------------


def libvirt_lab_network(lab: str) -> str:
    return f"{lab}-lab"


def libvirt_management_network(lab: str) -> str:
    return f"{lab}-mgmt"


def vm_prefix(lab: str) -> str:
    """VM names (libvirt domains, VirtualBox machines) are this plus the host's name."""
    return f"{lab}-"


# -- Kubernetes ----------------------------------------------------------------------------

PART_OF = "mcast-lab"
# The receiver image the node builds from its own iperf (provision/receiver-image.sh).
NODE_BUILT_IMAGE = "mcast-lab/iperf:node"
LABEL_LAB = "mcast-lab/lab"
LABEL_RUN = "mcast-lab/run"


def kube_pod(lab: str, member: str) -> str:
    """A receiver pod's name: the lab's name and the receiver (group member) it is."""
    return f"{lab}-{member}"


def kube_run_label(lab: str, case: str) -> str:
    """The `mcast-lab/run` label of one case's receiver pods: deleted together by it.
    A label value: 63 characters at most, alphanumerics, '-', '_' and '.'."""
    return f"{lab}.{case.replace('@', '-at-')}"[:63].rstrip("-_.")


def kube_command_pod(lab: str, host: str, token: str) -> str:
    """A pod that runs one command for a lab host on a cluster (the sender's iperf)."""
    return f"{lab}-{host}-{token}"


def kube_owner(project_dir: Path, lab: str) -> str:
    """The owner label of what a lab makes on a cluster: this machine, this project, this
    lab. Destroy finds a crashed run's leftovers by it and never touches another user's
    lab of the same name."""
    import hashlib
    import socket

    mine = f"{socket.gethostname()}:{project_dir}:{lab}"
    return hashlib.sha256(mine.encode()).hexdigest()[:16]


def kube_namespace(lab: str, token: str) -> str:
    """The lab's own namespace on a cluster: a suffix, so two runs never share one."""
    return f"{lab}-{token}"[:63]


def captures_dir(project_dir: Path, lab: str) -> Path:
    """Where `lab capture` keeps what it captured by hand."""
    return lab_dir(project_dir, lab) / "captures"


def capture_tmp_file(lab: str, point: str, pid: int) -> str:
    """Where tcpdump writes on a host while it captures (fetched, then removed). It ends in
    .pcap: Ubuntu's AppArmor profile of tcpdump lets it write such files only."""
    return f"/tmp/{vm_prefix(lab)}capture-{point}-{pid}.pcap"

"""What the vagrant backend records in the state file."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from lab.check import Check
from lab.remote.ssh import SshTarget
from lab.state import known_fields


@dataclass
class Progress:
    """Provisioning of one host, as `lab status` shows it while `lab up` runs."""

    total: int
    done: list[str] = field(default_factory=list)
    failed: str | None = None  # the step that failed, if one did
    log: str | None = None  # its log on this machine


@dataclass
class VagrantRecord:
    backend: str = "vagrant"
    status: str = ""  # "" (nothing made), "creating" (an `up` began), "up"
    provider: str | None = None
    created: float | None = None
    management_subnet: str | None = None  # libvirt: this lab's own, chosen at the first up
    libvirt_networks: list[str] = field(default_factory=list)  # recorded before defined
    ssh: dict[str, SshTarget] = field(default_factory=dict)  # from `vagrant ssh-config`
    lab_nics: dict[str, str] = field(default_factory=dict)  # host -> its lab NIC's name
    provisioning: dict[str, Progress] = field(default_factory=dict)
    pod_runs: dict[str, list[str]] = field(default_factory=dict)  # run label -> pods
    selfcheck: list[Check] = field(default_factory=list)  # the last `lab up`'s
    snapshots: dict[str, float] = field(default_factory=dict)  # name -> when taken
    # name -> what this record said when it was taken (provisioning, NICs, self-check):
    # `lab reset` puts it back with the VMs.
    snapshot_records: dict[str, dict[str, Any]] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> VagrantRecord:
        d = known_fields(cls, data)
        d["ssh"] = {h: SshTarget(**known_fields(SshTarget, t))
                    for h, t in d.get("ssh", {}).items()}
        d["provisioning"] = {h: Progress(**known_fields(Progress, p))
                             for h, p in d.get("provisioning", {}).items()}
        d["selfcheck"] = [Check(**known_fields(Check, c)) for c in d.get("selfcheck", [])]
        return cls(**d)

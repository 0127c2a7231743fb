"""What the cluster backend records in the state file, before it makes each thing."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from lab.state import known_fields


@dataclass
class ClusterRecord:
    backend: str = "cluster"
    status: str = ""  # "" (nothing made), "creating" (an `up` began), "up"
    context: str = ""  # the kubeconfig context the lab was made in
    namespace: str = ""  # recorded before it is created (own mode), or the shared one
    own_namespace: bool = True  # made by the lab: destroy deletes it whole
    # Receiver pods of the case running now, by receiver: a crash leaves them recorded
    # (destroy deletes by label as well).
    pods: dict[str, str] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ClusterRecord:
        return cls(**known_fields(cls, data))

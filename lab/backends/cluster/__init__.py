"""The cluster backend: the lab's scenarios on a Kubernetes cluster of the user's."""

from lab.backends.cluster.backend import ClusterBackend as BACKEND
from lab.backends.cluster.checks import checks

__all__ = ["BACKEND", "checks"]

"""mcast-lab: multicast into Kubernetes pods, as a reproducible lab."""

from __future__ import annotations

__version__ = "0.1.0"

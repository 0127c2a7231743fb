"""The netns backend: hosts and pods as network namespaces on this machine."""

from lab.backends.netns.backend import NetnsBackend as BACKEND
from lab.backends.netns.checks import checks

__all__ = ["BACKEND", "checks"]

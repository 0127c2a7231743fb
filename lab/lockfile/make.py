"""The lock of a lab that is up: every host read side by side through the backend."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING

from lab import names
from lab.lockfile import inventory
from lab.lockfile.lock import Box, Lock

if TYPE_CHECKING:
    from lab.backends.base import Backend


def lock_of(backend: Backend) -> Lock:
    lab = backend.lab
    hosts = [h.name for h in lab.hosts]
    with ThreadPoolExecutor(max_workers=len(hosts), thread_name_prefix="lock") as pool:
        found = list(pool.map(lambda name: inventory.read(
            backend.host(name), names.VM_STATE_DIR, backend.lock_packages), hosts))
    box = backend.box_identity()
    return Lock.of(lab.name, backend.name, box["provider"] if box else None,
                   Box(**box) if box else None, dict(zip(hosts, found, strict=True)))

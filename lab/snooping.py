"""A Linux bridge that snoops IGMP, as every backend with such a lab switch reads it: the
bridge's multicast database (`bridge -j -s mdb show`) and the waits a run needs on it.

A leaf module (it imports nothing of lab but errors): the netns backend's switch is a bridge
in a namespace, the libvirt provider's is the lab network's bridge on this machine.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping

from lab.errors import BackendError

# The switch's IGMP query response interval (the kernel's default is 10 s): also how long
# its querier waits after start-up before the bridge stops flooding every group.
QUERY_RESPONSE_S = 1.0
# A group's entry on a port counts down from the membership interval (260 s) while members
# report, and from the last-member time (2 x 1 s, the kernel's defaults) once one left.
LEAVE_HEARD_TIMER_S = 10.0
POLL_S = 0.05


def memberships(mdb_json: str, group: str, ports: Mapping[str, str]) -> dict[str, float]:
    """The hosts (`ports` maps a bridge port to its host) whose port has an entry for
    `group`, each with the seconds the entry has left."""
    return {ports[e["port"]]: float(e.get("timer") or 0)
            for table in json.loads(mdb_json or "[]") for e in table.get("mdb", [])
            if e.get("grp") == group and e.get("port") in ports}


def wait_joined(read: Callable[[], dict[str, float]], group: str, hosts: set[str],
                timeout: float) -> None:
    """Until the bridge has an entry for `group` on each of `hosts`' ports."""
    deadline = time.monotonic() + timeout
    while not hosts <= (learned := set(read())):
        if time.monotonic() > deadline:
            raise BackendError(f"the lab switch did not learn {group} on the port(s) of "
                               f"{', '.join(sorted(hosts - learned))} within {timeout:g} s "
                               "although the receivers there joined: no IGMP report "
                               "reached it")
        time.sleep(POLL_S)


def wait_left(read: Callable[[], dict[str, float]], group: str, hosts: set[str],
              timeout: float) -> None:
    """Until the bridge has heard the last member behind each of `hosts`' ports leave:
    the entry is gone, or down to the last-member time."""
    deadline = time.monotonic() + timeout
    while pending := {h for h, left in read().items() if h in hosts and
                      left > LEAVE_HEARD_TIMER_S}:
        if time.monotonic() > deadline:
            raise BackendError(f"the lab switch heard no leave of {group} from the port(s) "
                               f"of {', '.join(sorted(pending))} within {timeout:g} s of "
                               "the receivers there ending")
        time.sleep(POLL_S)


def wait_out_querier_start(querier_on: float) -> None:
    """A bridge floods every group until its querier has been on for one query response
    interval (the kernel's start-up delay, br_multicast_set_querier): return once that
    has passed since `querier_on` (time.monotonic())."""
    time.sleep(max(0.0, querier_on + QUERY_RESPONSE_S + 0.1 - time.monotonic()))

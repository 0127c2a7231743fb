"""Waiting for pods with a watch and a deadline: `kubectl get pods -w -o json` and
`kubectl get events -w -o json` stream what changes, and a wait ends as soon as its pods
are there, or as soon as one of them cannot get there (its image cannot be pulled, its
sandbox, where Multus and the CNI plugins run, cannot be made), naming the pod and what
its events say, instead of sitting out the deadline."""

from __future__ import annotations

import json
import time
from collections.abc import Iterable
from typing import Any

from lab.errors import BackendError
from lab.host import Process
from lab.kube.cluster import container_exit
from lab.kube.kubectl import Kubectl

POLL_S = 0.05
# A container waiting for one of these reasons will not start by waiting longer.
FAILED_WAITING = {"ErrImagePull", "ImagePullBackOff", "InvalidImageName", "ErrImageNeverPull",
                  "CreateContainerConfigError", "CreateContainerError", "RunContainerError",
                  "CrashLoopBackOff"}
# Warning events of a pod that end its wait at once.
FAILED_EVENTS = {"FailedCreatePodSandBox", "Failed", "FailedMount", "InspectFailed",
                 "ErrImageNeverPull"}


class PodsFailed(BackendError):
    """A pod did not become what was waited for: the message names it and its events."""


def json_stream(text: str) -> tuple[list[dict[str, Any]], int]:
    """The whole JSON values at the start of `text` (what kubectl -w -o json printed so
    far) and how many characters they took; a List's items one by one."""
    decoder = json.JSONDecoder()
    found: list[dict[str, Any]] = []
    at = 0
    while True:
        while at < len(text) and text[at].isspace():
            at += 1
        try:
            value, end = decoder.raw_decode(text, at)
        except ValueError:
            return found, at
        at = end
        if isinstance(value, dict) and str(value.get("kind", "")).endswith("List"):
            found.extend(value.get("items") or [])
        elif isinstance(value, dict):
            found.append(value)


class _Stream:
    """One `kubectl get -w -o json`, read as it goes."""

    def __init__(self, kubectl: Kubectl, args: list[str], timeout: float) -> None:
        self.argv = kubectl.argv("get", *args, "-w", "-o", "json")
        self.host = kubectl.host
        self.timeout = timeout
        self.process: Process = self.host.start(self.argv, timeout=timeout)
        self.seen = 0

    def restart(self) -> None:
        self.process = self.host.start(self.argv, timeout=self.timeout)
        self.seen = 0

    def fresh(self) -> list[dict[str, Any]]:
        objects, used = json_stream(self.process.output()[self.seen:])
        self.seen += used
        return objects

    def stop(self) -> None:
        self.process.stop()


def ready(pod: dict[str, Any]) -> bool:
    return any(c.get("type") == "Ready" and c.get("status") == "True"
               for c in pod.get("status", {}).get("conditions") or [])


def _stuck(pod: dict[str, Any]) -> str | None:
    """Why the pod cannot start, from its status; None while it may still."""
    status = pod.get("status", {})
    for c in status.get("containerStatuses") or []:
        waiting = (c.get("state") or {}).get("waiting") or {}
        if waiting.get("reason") in FAILED_WAITING:
            return f"{waiting['reason']}: {waiting.get('message', '')}".rstrip(": ")
    if status.get("phase") == "Failed" and container_exit(pod) is None:
        return f"Failed: {status.get('reason', '')} {status.get('message', '')}".strip()
    return None


def _phase(pod: dict[str, Any] | None) -> str:
    return pod.get("status", {}).get("phase", "no status") if pod else "not seen"


def event_line(event: dict[str, Any]) -> str:
    return (f"{event.get('type', '')} {event.get('reason', '')} "
            f"{event.get('involvedObject', {}).get('name', '')}: "
            f"{str(event.get('message', '')).strip()}")


def wait_pods(kubectl: Kubectl, pods: Iterable[str], selector: str, *, until: str,
              deadline_s: float) -> dict[str, dict[str, Any]]:
    """Wait until every pod of `pods` (names, all matching `selector`) is Ready (`until`
    "ready": a receiver listening) or has ended ("done": a command's pod); the pods as last
    seen. PodsFailed at once for a pod that cannot start, or at the deadline."""
    want = set(pods)
    last: dict[str, dict[str, Any]] = {}
    events: list[dict[str, Any]] = []
    watch = _Stream(kubectl, ["pods", "-l", selector], deadline_s + 5)
    warn = _Stream(kubectl, ["events"], deadline_s + 5)
    deadline = time.monotonic() + deadline_s
    try:
        while True:
            for pod in watch.fresh():
                name = pod.get("metadata", {}).get("name", "")
                if name in want:
                    last[name] = pod
            events += [e for e in warn.fresh()
                       if e.get("involvedObject", {}).get("name") in want]
            reached = {n for n, p in last.items() if
                       (container_exit(p) is not None if until == "done"
                        else ready(p) or container_exit(p) is not None)}
            if reached == want:
                return last
            for stream in (watch, warn):
                if stream.process.running():
                    continue
                ended = stream.process.stop()
                if not ended.ok:
                    # kubectl gave up (refused, or the connection is gone): say why now,
                    # not at the deadline.
                    raise PodsFailed(f"waiting for {', '.join(sorted(want - reached))}: "
                                     f"`kubectl get -w` ended (exit status "
                                     f"{ended.exit_status}): "
                                     f"{(ended.stderr.strip() or 'no message')[-400:]}")
                stream.restart()  # the server ended the watch (its timeout): watch again
            for name in sorted(want - reached):
                why = _stuck(last.get(name, {}))
                bad = [e for e in events if e.get("type") == "Warning" and
                       e.get("reason") in FAILED_EVENTS and
                       e.get("involvedObject", {}).get("name") == name]
                if why or bad:
                    raise PodsFailed(_failure(name, why or event_line(bad[-1]), events))
            if time.monotonic() > deadline:
                late = sorted(want - reached)
                phases = ", ".join(f"{n} ({_phase(last.get(n))})" for n in late)
                raise PodsFailed(_failure(late[0], f"not {until} within {deadline_s:g} s: "
                                          f"{phases}", events))
            time.sleep(POLL_S)
    finally:
        watch.stop()
        warn.stop()


def _failure(pod: str, why: str, events: list[dict[str, Any]]) -> str:
    said = "\n".join(f"  {event_line(e)}" for e in events[-10:]) or "  (no events)"
    return f"pod {pod}: {why}\nits events:\n{said}"

"""The runner stops receivers together: all are asked to end before any is waited for, so
N receivers cost one grace period, not N. Real processes (sh) in this machine's namespace;
they send no traffic."""

from __future__ import annotations

from pathlib import Path

from lab.local import LocalProcess
from lab.model.scenario import Expectation, ReceiverSpec
from lab.run.artifacts import RunArtifacts
from lab.run.runner import Endpoint, _collect


def test_every_receiver_is_asked_to_end_before_any_is_waited_for(tmp_path: Path) -> None:
    log = tmp_path / "log"
    # Each process notes the SIGTERM, takes a while to end (as iperf does when it prints
    # its final report), then notes its exit.
    script = (f'trap \'echo "term $0" >> {log}; sleep 1; echo "exit $0" >> {log}; exit 0\' '
              'TERM; echo ready; while :; do sleep 0.05; done')
    spec = ReceiverSpec("r", "host", "k8s", "eth1", 1, False, Expectation(True))
    endpoints = []
    for i in range(4):
        proc = LocalProcess(["sh", "-c", script, str(i)], where="here", timeout=30)
        endpoints.append(Endpoint(f"r{i}", spec, None, "eth1", proc))  # type: ignore[arg-type]
    for ep in endpoints:  # wait until each shell has set its trap
        assert ep.process is not None
        while "ready" not in ep.process.output():
            pass
    artifacts = RunArtifacts(tmp_path / "results", "t", {})
    _collect(endpoints, artifacts, "case", None)
    events = log.read_text().split("\n")[:-1]
    assert sorted(events[:4]) == [f"term {i}" for i in range(4)], events
    assert sorted(events[4:]) == [f"exit {i}" for i in range(4)], events
    assert all(ep.collected for ep in endpoints)
    assert (artifacts.tmp / "raw" / "case" / "r0.csv").read_text() == "ready\n"
    artifacts.finish("complete")

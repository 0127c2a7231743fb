"""The state file holds one backend's typed record: written whole after every change, read
back the same, and anything it does not know is refused by name (never read as empty)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lab.backends.netns.record import NetnsRecord, PodNetwork, PodRecord
from lab.backends.vagrant.record import Progress, VagrantRecord
from lab.errors import BackendError
from lab.remote.ssh import SshTarget
from lab.state import State


def test_a_netns_record_round_trips(tmp_path: Path) -> None:
    state = State(tmp_path / "state.json")
    assert state.backend is None and not state.exists
    r = state.record(NetnsRecord)
    assert r == NetnsRecord()  # no file: a fresh record, nothing made
    r.status = "up"
    r.namespaces["l-k8s"] = "host"
    r.pods["p"] = PodRecord("l-pod-p", [PodNetwork("eth1", {"type": "macvlan"})])
    state.save()
    again = State(tmp_path / "state.json")
    assert again.backend == "netns"
    assert again.record(NetnsRecord) == r
    assert json.loads((tmp_path / "state.json").read_text())["version"] == 1


def test_a_vagrant_record_round_trips(tmp_path: Path) -> None:
    state = State(tmp_path / "state.json")
    r = state.record(VagrantRecord)
    r.ssh["k8s"] = SshTarget("k8s", "192.168.121.5", 22, "vagrant", "/key")
    r.provisioning["k8s"] = Progress(4, ["lab-nic"])
    r.pod_runs["l.pod-multus"] = ["pod-attached"]
    state.save()
    assert State(tmp_path / "state.json").record(VagrantRecord) == r


def test_a_record_that_is_not_there_is_an_error_not_an_empty_one(tmp_path: Path) -> None:
    state = State(tmp_path / "state.json")
    with pytest.raises(KeyError):
        state.record(NetnsRecord).pods["never-made"]  # noqa: B018
    # Another backend's record is not read as an empty one of this backend.
    path = tmp_path / "other.json"
    path.write_text(json.dumps({"version": 1, "backend": "netns", "status": "up"}))
    with pytest.raises(BackendError, match=rf"{path} was written by the netns backend, not "
                       "the vagrant backend"):
        State(path).record(VagrantRecord)


@pytest.mark.parametrize("content", [
    {"backend": "netns", "namspaces": {}},  # a key this lab does not know (a typo)
    {"backend": "netns", "pods": {"p": {"networks": []}}},  # a pod without its namespace
    {"backend": "netns", "pods": {"p": {"netns": "x", "networks": [{"ifname": "eth1"}]}}},
])
def test_a_state_file_this_lab_cannot_read_is_refused_naming_it(
        tmp_path: Path, content: dict) -> None:
    path = tmp_path / "state.json"
    path.write_text(json.dumps(content))
    with pytest.raises(BackendError, match=rf"{path} is not a state record this lab reads "
                       r"\(NetnsRecord: "):
        State(path).record(NetnsRecord)


def test_a_state_file_that_is_not_json_is_refused_naming_it(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    path.write_text("{half")
    with pytest.raises(BackendError, match=rf"{path} is not JSON"):
        State(path)


def test_remove_starts_the_record_over(tmp_path: Path) -> None:
    state = State(tmp_path / "state.json")
    state.record(NetnsRecord).status = "up"
    state.save()
    state.remove()
    assert not state.exists and state.backend is None
    assert state.record(NetnsRecord) == NetnsRecord()

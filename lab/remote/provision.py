"""The provisioning engine: ordered, idempotent steps per host, hosts in parallel.

A step is a script from `provision/`. Before running it, the engine reads the step's
marker on the host (`$LAB_STATE_DIR/steps/<step>`): if it holds the digest of this script
and these parameters, the step is done and skipped; a changed script reruns. Exit status
75 means transient (retried until the step's deadline); anything else fails the host.
Each step's output is kept under `.lab/<lab>/logs/<host>/`.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import yaml

from lab.command import Result
from lab.errors import BackendError, CommandFailed
from lab.host import Host
from lab.model import fields as f
from lab.model.fields import Problems, Section
from lab.ui import Reporter

PROVISION_DIR = Path(__file__).resolve().parents[2] / "provision"  # lab/remote/ -> repo
DEFAULT_STATE_DIR = "/var/lib/mcast-lab"
TRANSIENT_EXIT = 75
RETRY_WAIT_S = 5.0


@dataclass(frozen=True)
class Step:
    name: str
    script: Path
    roles: tuple[str, ...]
    timeout_s: int
    retry_for_s: int
    tier: str = "base"
    params: tuple[str, ...] | None = None  # None: every parameter counts


@dataclass(frozen=True)
class StepOutcome:
    host: str
    step: str
    action: str  # "ran" or "skipped"
    seconds: float
    attempts: int


def load_steps(path: Path = PROVISION_DIR / "steps.yaml") -> list[Step]:
    problems = Problems(str(path))
    data = yaml.safe_load(path.read_text())
    holder = Section(problems, "", {"steps": data})
    steps = []
    for key, item in holder.items("steps"):
        s = Section(problems, key, item)
        name = s.get("name", f.name)
        script = s.get("script", f.ref)
        roles = s.get("roles", lambda v: tuple(f.choice("source", "node")(r) for r in v))
        timeout = s.get("timeout", f.integer(1, 7200), 300)
        retry_for = s.get("retry_for", f.integer(0, 7200), 300)
        tier = s.get("tier", f.choice("base", "kubernetes"), "base")
        params = s.get("params", lambda v: tuple(f.string(p) for p in v), None)
        s.done()
        if script and not (path.parent / script).is_file():
            problems.add(s.key("script"), f"{script} does not exist in {path.parent}")
        if name and script and roles and timeout is not None and retry_for is not None:
            steps.append(Step(name, path.parent / script, roles, timeout, retry_for,
                              tier or "base", params))
    problems.raise_if_any()
    return steps


def step_digest(step: Step, env: dict[str, str]) -> str:
    """What makes a step done: its script and the parameters it declares."""
    h = hashlib.sha256(step.script.read_bytes())
    used = env if step.params is None else {k: env.get(k) for k in step.params}
    h.update(json.dumps(used, sort_keys=True).encode())
    return h.hexdigest()[:32]


class Provisioner:
    def __init__(self, steps: list[Step], log_dir: Path, reporter: Reporter,
                 state_dir: str = DEFAULT_STATE_DIR,
                 on_step: Callable[[StepOutcome], None] | None = None) -> None:
        self.steps = steps
        self.on_step = on_step  # called (under a lock) after each step, done or skipped
        self.log_dir = log_dir
        self.reporter = reporter
        self.state_dir = state_dir
        self._lock = threading.Lock()

    def provision(self, hosts: list[tuple[Host, str, dict[str, str]]]) -> list[StepOutcome]:
        """Provision each (host, role, env) in parallel; one aggregate error names every
        host that failed, after all hosts have finished."""
        outcomes: list[StepOutcome] = []
        failures: list[str] = []
        with ThreadPoolExecutor(max_workers=max(len(hosts), 1)) as pool:
            futures = {pool.submit(self.provision_host, h, role, env): h.name
                       for h, role, env in hosts}
            for future, name in futures.items():
                try:
                    outcomes.extend(future.result())
                except BackendError as exc:
                    failures.append(f"{name}: {exc}")
        if failures:
            raise BackendError("provisioning failed:\n" + "\n".join(failures))
        return outcomes

    def provision_host(self, host: Host, role: str, env: dict[str, str]) -> list[StepOutcome]:
        env = {**env, "LAB_STATE_DIR": self.state_dir}
        outcomes = []
        for step in self.steps:
            if role not in step.roles:
                continue
            outcome = self._step(host, step, env)
            outcomes.append(outcome)
            if self.on_step is not None:
                with self._lock:
                    self.on_step(outcome)
        return outcomes

    def total_for(self, role: str) -> int:
        return sum(1 for s in self.steps if role in s.roles)

    def _step(self, host: Host, step: Step, env: dict[str, str]) -> StepOutcome:
        start = time.monotonic()
        digest = step_digest(step, env)
        marker = f"{self.state_dir}/steps/{step.name}"
        done = host.run(["cat", marker], timeout=30, check=False)
        if done.ok and done.stdout.strip() == digest:
            self._say(f"{host.name}: {step.name} already done")
            return StepOutcome(host.name, step.name, "skipped", time.monotonic() - start, 0)
        script = step.script.read_text()
        argv = ["env", *[f"{k}={v}" for k, v in sorted(env.items())], "bash", "-s"]
        deadline = start + step.retry_for_s
        attempts = 0
        while True:
            attempts += 1
            result = host.run(argv, timeout=step.timeout_s, check=False, input=script)
            self._log(host.name, step.name, attempts, result)
            if result.ok or result.exit_status != TRANSIENT_EXIT or time.monotonic() > deadline:
                break
            self._say(f"{host.name}: {step.name} not ready yet (attempt {attempts}); retrying")
            time.sleep(RETRY_WAIT_S)
        if not result.ok:
            log = self.log_dir / host.name / f"{step.name}.log"
            raise CommandFailed(result, f"step {step.name} ({step.script.name}, log {log})")
        host.run(["sh", "-c", 'mkdir -p "$(dirname "$1")" && printf "%s\\n" "$2" > "$1"', "sh",
                  marker, digest], timeout=30, what=f"record step {step.name}")
        seconds = time.monotonic() - start
        self._say(f"{host.name}: {step.name} done ({seconds:.1f} s)")
        return StepOutcome(host.name, step.name, "ran", seconds, attempts)

    def _log(self, host: str, step: str, attempt: int, result: Result) -> None:
        path = self.log_dir / host / f"{step}.log"
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("a") as out:
            out.write(f"# attempt {attempt}: exit status {result.exit_status}"
                      f"{' (timed out)' if result.timed_out else ''} after "
                      f"{result.duration:.1f} s\n# stdout\n{result.stdout}\n# stderr\n"
                      f"{result.stderr}\n")

    def _say(self, text: str) -> None:
        with self._lock:
            self.reporter.info(text)

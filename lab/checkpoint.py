"""Named points in long operations where a test can hold `lab` still, so that a fault is
injected at a known moment instead of after a guessed sleep.

Off unless `LAB_PAUSE_AT` names the point (several: comma-separated). Then, on reaching
it, `lab` writes "<pid> <point>" to the file named by `LAB_PAUSE_FILE` and waits until
that file is removed (at most PAUSE_LIMIT_S), staying interruptible by signals.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

PAUSE_LIMIT_S = 120.0


def reached(point: str) -> None:
    wanted = os.environ.get("LAB_PAUSE_AT", "")
    if not wanted or point not in wanted.split(","):
        return
    flag = Path(os.environ["LAB_PAUSE_FILE"])
    tmp = flag.with_name(flag.name + ".tmp")
    tmp.write_text(f"{os.getpid()} {point}\n")
    os.replace(tmp, flag)  # the waiting test never reads a half-written file
    deadline = time.monotonic() + PAUSE_LIMIT_S
    while flag.exists() and time.monotonic() < deadline:
        time.sleep(0.02)

"""Text without rich, for what is printed where start-up time matters most: `lab status`
of a lab that is down (rich's console and tables cost about 30 ms to import, a third of
the command), and JSON for scripts."""

from __future__ import annotations

import json
import sys
from typing import Any

from lab.backends.base import LabStatus


def print_down_status(st: LabStatus) -> None:
    """A lab with no host made: its hosts as a plain aligned list."""
    rows = [(h.name, str(h.state), h.address, h.detail) for h in st.hosts]
    widths = [max(len(r[i]) for r in rows) for i in range(3)] if rows else [0, 0, 0]
    lines = [f"lab {st.lab} ({st.backend}): {st.state}; `lab up` creates it"]
    lines += [f"  {r[0]:<{widths[0]}}  {r[1]:<{widths[1]}}  {r[2]:<{widths[2]}}  {r[3]}"
              for r in rows]
    sys.stdout.write("\n".join(lines) + "\n")


def print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2) + "\n")

"""One finding of `lab doctor` (and of the checks `lab up` runs first): what was looked
at, whether it is fine, and how to fix it. Its own module: every backend's checks make
these, and the doctor that runs them imports those checks."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    message: str
    fix: str = ""
    blocking: bool = True  # `lab up` refuses while a blocking check fails

    def as_dict(self) -> dict[str, object]:
        return self.__dict__.copy()

"""The provisioning steps' record of what they downloaded: lib.sh's lab_fetch appends
`URL<TAB>sha256` to `$state/downloads` and keeps a copy of each file in
`$state/downloads.d/<sha256>`. The lock and the bundle both read it, through here."""

from __future__ import annotations

# Shell lines (with `$state` set to the steps' state folder) that print the record as
# `fetch<TAB>URL<TAB>sha256` lines, nothing when no step downloaded anything.
LIST_SHELL = r"""if [ -f "$state/downloads" ]; then sed 's/^/fetch\t/' "$state/downloads"; fi"""
KIND = "fetch"


def parse(rest: str) -> tuple[str, str] | None:
    """`URL<TAB>sha256` (a `fetch` line without its kind) -> (URL, sha256)."""
    url, tab, digest = rest.partition("\t")
    return (url, digest) if tab and url and digest and "\t" not in digest else None


def copy_path(state_dir: str, digest: str) -> str:
    return f"{state_dir}/downloads.d/{digest}"

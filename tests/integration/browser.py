"""Real headless Chromium for tests that open a page, with a trap for network requests.

Chromium is sent to a proxy on loopback that this module runs (`RequestTrap`): every
request for anything (http, https, any host, loopback too) arrives there and is recorded
and refused, so no traffic leaves the machine. Chromium itself asks Google's services for
the time, updates and accounts whatever flags say: those exact hosts are told apart
(`BROWSER_OWN`); every other request is the page's. A page that is whole in one file
makes none."""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import tempfile
import threading
from pathlib import Path

CHROMIUM = next((p for p in (shutil.which("chromium"), shutil.which("chromium-browser"))
                 if p), None)


# Hosts Chromium contacts on its own (seen here: 150 with every background flag set).
BROWSER_OWN = frozenset({
    "clients2.google.com", "update.googleapis.com", "accounts.google.com",
    "android.clients.google.com", "safebrowsingohttpgateway.googleapis.com",
    "optimizationguide-pa.googleapis.com", "content-autofill.googleapis.com",
    "redirector.gvt1.com", "edgedl.me.gvt1.com", "www.google.com"})


def request_host(line: str) -> str:
    """The host of a proxy request line: `GET http://h/x HTTP/1.1`, `CONNECT h:443 ...`."""
    parts = line.split()
    if len(parts) < 2:
        return ""
    target = parts[1]
    if "://" in target:
        target = target.split("://", 1)[1]
    return target.split("/", 1)[0].rsplit(":", 1)[0] if ":" in target.split("/", 1)[0] \
        else target.split("/", 1)[0]


class RequestTrap:
    """A proxy on 127.0.0.1 that records the first line of each request and refuses it."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.requests: list[str] = []
        self.unused = 0  # connections closed without a request line
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with conn:
                conn.settimeout(5)
                try:
                    first = conn.recv(4096).decode(errors="replace").split("\r\n", 1)[0]
                except OSError:
                    first = ""
                if not first:
                    # Chromium opens sockets to its proxy ahead of need (preconnect) and may
                    # close them unused: no request line, nothing asked for, so no request
                    # of the page's. Counted apart, not taken for one.
                    self.unused += 1
                    continue
                self.requests.append(first)
                # Refused either way (a peer gone before the answer): it is recorded.
                with contextlib.suppress(OSError):
                    conn.sendall(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n"
                                 b"Connection: close\r\n\r\n")

    def close(self) -> None:
        self.sock.close()


def _argv(trap: RequestTrap, profile: str, width: int, height: int) -> list[str]:
    assert CHROMIUM is not None
    return [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
            "--no-first-run", "--no-default-browser-check", "--disable-background-networking",
            "--disable-component-update", "--disable-sync", "--disable-default-apps",
            "--disable-extensions", "--disable-domain-reliability", "--metrics-recording-only",
            f"--proxy-server=http://127.0.0.1:{trap.port}", "--proxy-bypass-list=<-loopback>",
            f"--user-data-dir={profile}",
            f"--window-size={width},{height}", "--virtual-time-budget=5000"]


def open_page(url: str, screenshot: Path, width: int = 1280, height: int = 4000
              ) -> tuple[str, list[str]]:
    """Load `url`: its DOM after load, and the requests it made, Chromium's own left out
    (the screenshot is saved)."""
    trap = RequestTrap()
    try:
        with tempfile.TemporaryDirectory() as profile:
            dom = subprocess.run([*_argv(trap, profile, width, height), "--dump-dom", url],
                                 capture_output=True, text=True, timeout=120, check=True).stdout
            subprocess.run([*_argv(trap, profile, width, height),
                            f"--screenshot={screenshot}", url],
                           capture_output=True, text=True, timeout=120, check=True)
        return dom, [r for r in trap.requests if request_host(r) not in BROWSER_OWN]
    finally:
        trap.close()

"""A real browser for the UI tests: Debian's Chromium (or the one MODELOPS_CHROMIUM names) driven by Playwright,
headless. Playwright's own browser download is not used: it needs hosts this machine cannot reach."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

CANDIDATES = ("chromium", "chromium-browser", "google-chrome")
# Headless on a closed network: without the background-networking flags Chromium keeps opening connections that
# the network refuses; --no-sandbox because CI runs as root.
FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync"]
INSTALL_HINT = "install Debian's chromium (`apt-get install -y chromium`, as .ci/run does) or set MODELOPS_CHROMIUM"


def find_chromium() -> Path | None:
    named = os.environ.get("MODELOPS_CHROMIUM")
    if named:
        return Path(named) if Path(named).is_file() else None
    found = next((shutil.which(name) for name in CANDIDATES if shutil.which(name)), None)
    return Path(found) if found else None

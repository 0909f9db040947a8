"""Tower workers as real `faust -A towers.app worker` processes, for integration tests."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

from tests.conftest import REPO, free_ports


class TowerWorker:
    def __init__(self, env: dict[str, str], datadir: Path, log: Path) -> None:
        self.port = free_ports(1)[0]
        self.env, self.datadir, self.log = dict(env, CORRIDOR_TOWER_WEB_PORT=str(self.port)), datadir, log
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> TowerWorker:
        faust = Path(sys.executable).with_name("faust")
        with open(self.log, "ab") as fh:
            self.proc = subprocess.Popen(
                [str(faust), "--datadir", str(self.datadir), "-A", "towers.app", "worker", "-l", "info"],
                cwd=REPO,
                env=self.env,
                stdout=fh,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        return self

    def state(self, page: str = "state") -> dict[str, Any] | None:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/corridor/{page}/", timeout=10) as resp:
                return json.loads(resp.read())
        except (OSError, ValueError):
            return None

    def tables(self) -> dict[str, Any]:
        """Digest of each owned region's tables."""
        st = self.state("tables")
        assert st is not None, self.tail()
        return st["regions"]

    def wait_for_regions(self, n: int, timeout: float = 90) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.proc is not None and self.proc.poll() is None, self.tail()
            st = self.state()
            if st is not None and st["recovered"] and len(st["regions"]) >= n:
                return st
            time.sleep(0.5)
        raise AssertionError(f"worker did not take {n} regions in {timeout} s:\n{self.tail()}")

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, sig)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)

    def tail(self, n: int = 40) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return ""

"""A server start is all or nothing: whatever went wrong, the process it started is gone afterwards."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.shared.errors import StackError
from pipeline.stack.process import ManagedProcess, pid_alive


class Probe:
    """A readiness check that notes the started pid (from the pid file) and never says ready."""

    def __init__(self, proc: ManagedProcess, fail: BaseException | None = None) -> None:
        self.proc, self.fail, self.pid = proc, fail, 0

    def __call__(self) -> bool:
        self.pid = self.pid or int(self.proc.pidfile.read_text())
        if self.fail is not None:
            raise self.fail
        return False


@pytest.mark.parametrize(
    ("marker", "fail", "error"),
    [
        ("sleep 30", None, StackError),  # never ready: times out
        ("not-its-command-line", None, StackError),  # its command line is not what the pid file check expects
        ("sleep 30", KeyboardInterrupt(), KeyboardInterrupt),  # Ctrl-C during start-up
    ],
)
def test_a_failed_start_leaves_nothing_running(
    tmp_path: Path, marker: str, fail: BaseException | None, error: type[BaseException]
) -> None:
    proc = ManagedProcess("sleeper", tmp_path / "s.pid", tmp_path / "s.log", marker)
    probe = Probe(proc, fail)
    with pytest.raises(error):
        proc.launch(["sleep", "30"], cwd=tmp_path, attached=True, ready=probe, timeout=0.6, what="sleeper")
    assert probe.pid and not pid_alive(probe.pid), "the process started is stopped"
    assert not proc.pidfile.exists()

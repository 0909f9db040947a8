"""One long-running server process of the embedded stack, tracked by a pid file.

`corridor stack up` returns while the servers run on, so a later `down` (another process)
must find them again: the pid file is the link, and the command line is checked so that a
reused pid never gets a signal meant for our server.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from pipeline.shared.errors import StackError

__all__ = ["ManagedProcess", "die_with_parent", "ensure_port_free", "pid_alive", "wait_until"]

_PR_SET_PDEATHSIG = 1
_LIBC: ctypes.CDLL | None = None


def die_with_parent(sig: int = signal.SIGTERM) -> Callable[[], None]:
    """A `preexec_fn` after which the kernel sends `sig` to the child when the process that started
    it dies, however it dies (and at once, should it have died before the child got this far).

    libc is opened here, in the parent: the child between fork and exec must not load libraries."""
    global _LIBC
    if _LIBC is None:
        _LIBC = ctypes.CDLL("libc.so.6", use_errno=True)
    libc, parent = _LIBC, os.getpid()

    def arm() -> None:
        libc.prctl(_PR_SET_PDEATHSIG, sig)
        if os.getppid() != parent:
            os.kill(os.getpid(), sig)

    return arm


def pid_alive(pid: int) -> bool:
    """True while `pid` runs; reaps it first when it is our own exited child."""
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat.rsplit(")", 1)[-1].split()[0] != "Z"


def is_our_child(pid: int) -> bool:
    """Whether `pid` is this process's child: a server started attached (it dies with us), rather
    than detached by `corridor stack up`. Restart it the same way."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return int(stat.rsplit(")", 1)[1].split()[1]) == os.getpid()


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def ensure_port_free(port: int, what: str, env_var: str) -> None:
    """Fail early, with the fix, rather than let a server die on bind and leave a half stack."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            raise StackError(
                f"port {port} on 127.0.0.1 ({what}) is already in use by another process: "
                f"stop that process or choose another port with {env_var}"
            ) from None


def wait_until(
    ready: Callable[[], bool],
    *,
    timeout: float,
    process: ManagedProcess,
    what: str,
    interval: float = 0.2,
    pid: int | None = None,
) -> None:
    """Poll `ready` until true; fail at once, with the log's tail, if the process dies first. With
    `pid` (a process just started here) liveness is that pid's, not the pid file's and command line's."""
    deadline = time.monotonic() + timeout
    while True:
        alive = pid_alive(pid) if pid is not None else process.running_pid() is not None
        if not alive:
            raise StackError(f"{what} exited during start-up; last lines of {process.logfile}:\n{process.tail()}")
        if ready():
            return
        if time.monotonic() > deadline:
            raise StackError(
                f"{what} did not become ready within {timeout:.0f} s; last lines of {process.logfile}:\n"
                f"{process.tail()}"
            )
        time.sleep(interval)


def _terminate(pid: int, timeout: float) -> None:
    """SIGTERM, wait up to `timeout`, then SIGKILL, and wait until it is gone."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while pid_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    if pid_alive(pid):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        while pid_alive(pid):
            time.sleep(0.05)


@dataclass(frozen=True, slots=True)
class ManagedProcess:
    """A server known by its pid file, log file and a marker string of its command line."""

    name: str
    pidfile: Path
    logfile: Path
    marker: str

    def running_pid(self) -> int | None:
        """The live pid of our server, or None; a stale pid file (crashed run) is removed."""
        try:
            pid = int(self.pidfile.read_text().strip())
        except (OSError, ValueError):
            return None
        if pid_alive(pid) and self.marker in _cmdline(pid):
            return pid
        self.pidfile.unlink(missing_ok=True)
        return None

    def start(self, argv: Sequence[str], *, cwd: Path, attached: bool, env: dict[str, str] | None = None) -> int:
        """Start detached from the terminal; `attached` ties its life to this Python process."""
        self.logfile.parent.mkdir(parents=True, exist_ok=True)
        with open(self.logfile, "ab") as log:
            proc = subprocess.Popen(
                list(argv),
                cwd=cwd,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                env=env,
                preexec_fn=die_with_parent() if attached else None,
            )
        self.pidfile.write_text(f"{proc.pid}\n")
        return proc.pid

    def launch(
        self,
        argv: Sequence[str],
        *,
        cwd: Path,
        attached: bool,
        ready: Callable[[], bool],
        timeout: float,
        what: str,
        env: dict[str, str] | None = None,
    ) -> int:
        """Start and wait until `ready`. All or nothing: on any failure or interruption the process
        started here is stopped by its own pid (whatever its pid file or command line then say) and
        its pid file removed, so a failed start leaves no server holding the ports."""
        pid = self.start(argv, cwd=cwd, attached=attached, env=env)
        try:
            wait_until(ready, timeout=timeout, process=self, what=what, pid=pid)
        except BaseException:
            _terminate(pid, timeout=5.0)
            self.pidfile.unlink(missing_ok=True)
            raise
        return pid

    def wait_ready(self, ready: Callable[[], bool], *, timeout: float, what: str, started: bool) -> None:
        """Until `ready`; a server `started` here that dies or never gets ready is stopped again (a
        node of a cluster, spawned with the others before any is waited for)."""
        try:
            wait_until(ready, timeout=timeout, process=self, what=what)
        except BaseException:
            if started:
                self.stop(timeout=5.0)
            raise

    def stop(self, timeout: float = 15.0) -> bool:
        """SIGTERM, wait up to `timeout`, then SIGKILL. True if something was running."""
        pid = self.running_pid()
        if pid is None:
            return False
        _terminate(pid, timeout)
        self.pidfile.unlink(missing_ok=True)
        return True

    def tail(self, lines: int = 12) -> str:
        try:
            text = self.logfile.read_text(errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:]) or "(empty log)"

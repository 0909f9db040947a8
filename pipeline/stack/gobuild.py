"""The Go toolchain, for the parts corridor builds from the Go module proxy (etcd, the Kubernetes
servers): found once, run with a one-line error that keeps the build's last lines."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from pipeline.shared.errors import StackError

__all__ = ["go_command", "go_env", "run_go"]


def go_command(what: str) -> str:
    go = shutil.which("go") or ("/usr/local/go/bin/go" if Path("/usr/local/go/bin/go").exists() else None)
    if go is None:
        raise StackError(f"{what} needs Go 1.23+ (https://go.dev/dl/); `go` is not on PATH")
    return go


def go_env() -> dict[str, str]:
    """Static binaries from the module proxy with the machine's own Go, never one it would download."""
    return {**os.environ, "GOFLAGS": "-mod=mod", "CGO_ENABLED": "0", "GOTOOLCHAIN": "local"}


def run_go(argv: list[str], *, cwd: Path, what: str) -> str:
    proc = subprocess.run(argv, cwd=cwd, env=go_env(), capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        tail = "\n".join((proc.stderr or proc.stdout).splitlines()[-15:])
        raise StackError(f"{what} failed (exit {proc.returncode}):\n{tail}")
    return proc.stdout

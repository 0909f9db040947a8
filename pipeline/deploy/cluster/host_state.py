"""What a test cluster changes on the machine outside its namespaces, and its undoing.

Two things escape the namespaces: the kubelet sets three kernel tunables (it wants the kernel to
panic on oops and to overcommit memory), and pods' cgroups live in the machine's cgroup tree. Both
are recorded before the kubelet starts, in the run's folder, and released when the run ends —
by the node's first process on SIGTERM, by the run's driver afterwards, or, should both have been
killed outright, by the next run, which finds the record.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path

from pipeline.deploy.cluster.layout import ClusterLayout

__all__ = ["KUBELET_SYSCTLS", "HostState"]

KUBELET_SYSCTLS = ("vm/overcommit_memory", "vm/panic_on_oom", "kernel/panic", "kernel/panic_on_oops")
_RECORD = "host-state.json"
_CGROUP_FS = Path("/sys/fs/cgroup")
_PROC_SYS = Path("/proc/sys")


def _read_sysctl(name: str) -> str | None:
    try:
        return (_PROC_SYS / name).read_text().strip()
    except OSError:
        return None


def _remove_cgroup_tree(top: Path, timeout: float) -> bool:
    """rmdir from the leaves up; a cgroup whose last process is still exiting is retried."""
    deadline = time.monotonic() + timeout
    while top.exists():
        for root, dirs, _files in os.walk(top, topdown=False):
            for d in dirs:
                with contextlib.suppress(OSError):
                    os.rmdir(Path(root) / d)
        with contextlib.suppress(OSError):
            os.rmdir(top)
        if not top.exists():
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(0.2)
    return True


@dataclass(frozen=True, slots=True)
class HostState:
    run_dir: Path
    cgroup_root: str
    sysctls: dict[str, str]

    @classmethod
    def record(cls, layout: ClusterLayout) -> HostState:
        """Read the values before anything changes them; an existing record (the driver's) wins."""
        path = layout.path(_RECORD)
        if path.exists():
            found = cls.load(layout.run_dir)
            if found is not None:
                return found
        values = {name: v for name in KUBELET_SYSCTLS if (v := _read_sysctl(name)) is not None}
        state = cls(layout.run_dir, layout.cgroup_root, values)
        layout.run_dir.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({"cgroup_root": state.cgroup_root, "sysctls": values}))
        return state

    @classmethod
    def load(cls, run_dir: Path) -> HostState | None:
        try:
            data = json.loads((run_dir / _RECORD).read_text())
            return cls(run_dir, str(data["cgroup_root"]), {str(k): str(v) for k, v in data["sysctls"].items()})
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def make_cgroup_root(self, node_root: str) -> None:
        """A node's kubelet refuses a cgroup root that does not exist. `node_root` lies under the
        run's own root; each level is made, and a new cpuset cgroup, which starts with no CPUs or
        memory nodes, takes its parent's."""
        top = self.cgroup_root.strip("/")
        rel = node_root.strip("/")
        if rel != top and not rel.startswith(top + "/"):
            raise ValueError(f"cgroup {node_root} is not under the run's {self.cgroup_root}")
        for controller in self._controllers():
            parent = controller
            for part in rel.split("/"):
                level = parent / part
                level.mkdir(exist_ok=True)
                for knob in ("cpuset.cpus", "cpuset.mems"):
                    if (level / knob).exists() and not (level / knob).read_text().strip():
                        (level / knob).write_text((parent / knob).read_text())
                parent = level

    def processes_in(self, cgroup: str) -> set[int]:
        """Every process in `cgroup` and below, by any controller (the kernel shows their ids as
        the reader's PID namespace numbers them)."""
        found: set[int] = set()
        rel = cgroup.strip("/")
        for controller in self._controllers():
            top = controller / rel
            if not top.is_dir():
                continue
            for procs in top.rglob("cgroup.procs"):
                with contextlib.suppress(OSError, ValueError):
                    found.update(int(line) for line in procs.read_text().split() if line.strip() != "0")
        return found

    @staticmethod
    def _controllers() -> list[Path]:
        if not _CGROUP_FS.is_dir():
            return []
        return [c for c in sorted(_CGROUP_FS.iterdir()) if c.is_dir() and not c.is_symlink()
                and (c / "cgroup.procs").exists()]  # fmt: skip

    def release(self, timeout: float = 15.0) -> list[str]:
        """Restore the tunables and remove the run's cgroups; returns what could not be undone."""
        left: list[str] = []
        for name, value in self.sysctls.items():
            if _read_sysctl(name) != value:
                try:
                    (_PROC_SYS / name).write_text(value + "\n")
                except OSError as exc:
                    left.append(f"sysctl {name.replace('/', '.')}={value}: {exc}")
        rel = self.cgroup_root.strip("/")
        if rel:
            for controller in self._controllers():
                top = controller / rel
                if top.exists() and not _remove_cgroup_tree(top, timeout):
                    left.append(f"cgroup {top}")
        return left

"""What a test cluster changes outside its namespaces is recorded first and undone afterwards, by
whichever of the node, the driver or the next run gets there (here on a stand-in /proc/sys and
cgroup tree)."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.deploy.cluster import host_state
from pipeline.deploy.cluster.host_state import KUBELET_SYSCTLS, HostState
from pipeline.deploy.cluster.layout import ClusterLayout


@pytest.fixture
def machine(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    proc, cgroups = tmp_path / "proc-sys", tmp_path / "cgroup"
    for name in KUBELET_SYSCTLS:
        (proc / name).parent.mkdir(parents=True, exist_ok=True)
        (proc / name).write_text("0\n")
    for controller in ("cpu", "cpuset", "memory"):
        (cgroups / controller).mkdir(parents=True)
        (cgroups / controller / "cgroup.procs").write_text("")
    (cgroups / "cpuset" / "cpuset.cpus").write_text("0-1\n")
    (cgroups / "cpu,cpuacct").symlink_to(cgroups / "cpu")
    monkeypatch.setattr(host_state, "_PROC_SYS", proc)
    monkeypatch.setattr(host_state, "_CGROUP_FS", cgroups)
    return tmp_path


def test_the_kubelets_changes_are_undone(machine: Path) -> None:
    layout = ClusterLayout(machine / "runs" / "123-456")
    state = HostState.record(layout)
    node = layout.node(1).cgroup_root
    state.make_cgroup_root(node)
    cpuset = machine / "cgroup" / "cpuset" / layout.cgroup_root.strip("/")
    for level in (cpuset, cpuset / "node-1"):
        (level / "cpuset.cpus").write_text("")  # as the kernel makes a new cpuset cgroup
    state.make_cgroup_root(node)
    for level in (cpuset, cpuset / "node-1"):
        assert (level / "cpuset.cpus").read_text() == "0-1\n"  # the parent's, level by level
    for level in (cpuset / "node-1", cpuset):
        (level / "cpuset.cpus").unlink()  # a control file, not a file: cgroupfs lets rmdir remove it
    with pytest.raises(ValueError):
        state.make_cgroup_root("/elsewhere")  # never a cgroup outside the run's own
    (machine / "proc-sys" / "kernel/panic").write_text("10\n")  # what the kubelet sets
    (machine / "proc-sys" / "vm/overcommit_memory").write_text("1\n")
    (machine / "cgroup" / "memory" / layout.cgroup_root.strip("/") / "kubepods" / "pod1").mkdir(parents=True)

    assert state.release(timeout=1) == []
    assert (machine / "proc-sys" / "kernel/panic").read_text().strip() == "0"
    assert (machine / "proc-sys" / "vm/overcommit_memory").read_text().strip() == "0"
    assert not any(p.name.startswith("corridor-k8s") for p in (machine / "cgroup").rglob("*"))


def test_a_run_killed_outright_is_undone_from_its_record(machine: Path) -> None:
    layout = ClusterLayout(machine / "runs" / "123-456")
    HostState.record(layout).make_cgroup_root(layout.node(1).cgroup_root)
    (machine / "proc-sys" / "kernel/panic_on_oops").write_text("1\n")
    found = HostState.load(layout.run_dir)  # what the next run reads
    assert found is not None and found.cgroup_root == layout.cgroup_root
    assert found.release(timeout=1) == []
    assert (machine / "proc-sys" / "kernel/panic_on_oops").read_text().strip() == "0"


def test_the_first_record_wins(machine: Path) -> None:
    """The node records after the driver: by then a value may already be the kubelet's."""
    layout = ClusterLayout(machine / "runs" / "1-2")
    HostState.record(layout)
    (machine / "proc-sys" / "kernel/panic").write_text("10\n")
    assert HostState.record(layout).sysctls["kernel/panic"] == "0"


def test_a_nodes_processes_are_found_in_every_controller_and_level(machine: Path) -> None:
    layout = ClusterLayout(machine / "runs" / "123-456", nodes=2)
    state = HostState.record(layout)
    mine, other = layout.node(1).cgroup_root.strip("/"), layout.node(2).cgroup_root.strip("/")
    for controller, rel, pids in (("memory", f"{mine}/kubepods/pod1", "11\n12\n"), ("cpuset", mine, "13\n"),
                                  ("memory", f"{other}/kubepods/pod2", "21\n")):  # fmt: skip
        (machine / "cgroup" / controller / rel).mkdir(parents=True, exist_ok=True)
        (machine / "cgroup" / controller / rel / "cgroup.procs").write_text(pids)
    assert state.processes_in(layout.node(1).cgroup_root) == {11, 12, 13}
    assert state.processes_in(layout.node(2).cgroup_root) == {21}

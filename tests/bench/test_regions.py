"""The regions bench's pure parts: the finer cut of the route it runs on, and what one region costs."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from pipeline.bench.regions import even_regions, per_region, servers_cpu_s
from pipeline.shared.corridor import load_corridor
from pipeline.shared.corridor.regions import parse_regions


@pytest.mark.parametrize("n", [9, 90])
def test_the_route_cut_into_n_regions_is_a_towers_file_corridor_accepts(n: int) -> None:
    route = load_corridor().route
    regions = parse_regions(even_regions(route.length_km, n), route, "bench")
    assert len(regions) == n
    assert regions.lookup(route.length_km - 0.001) == n - 1 and regions.lookup(0.0) == 0


def test_one_more_region_costs_the_difference_of_the_two_runs_over_the_regions_added() -> None:
    keys = ("workers_cpu_cores", "workers_rss_mib", "sync_messages_per_s", "etcd_writes_per_s", "kafka_cpu_cores",
            "etcd_cpu_cores")  # fmt: skip
    few = dict(zip(keys, (0.5, 300.0, 20.0, 11.0, 0.2, 0.05), strict=True))
    many = dict(zip(keys, (0.95, 345.0, 200.0, 92.0, 1.01, 0.05), strict=True))
    assert per_region(few, many, (9, 90)) == {"cpu_millicores": 5.5556, "rss_mib": 0.5556,
                                              "sync_messages_per_s": 2.2222, "etcd_writes_per_s": 1.0,
                                              "kafka_cpu_millicores": 10.0, "etcd_cpu_millicores": 0.0}  # fmt: skip


BUSY = "\n".join(
    [
        "import time",
        "t = time.process_time()",
        "while time.process_time() - t < 0.3: pass",
        "print(1, flush=True)",
        "time.sleep(60)",
    ]
)  # 0.3 s of CPU, then says so and idles


def test_the_servers_cpu_is_counted_only_for_the_stack_of_the_given_state_folder(tmp_path: Path) -> None:
    """Stand-ins named as the servers are (`java`, `etcd`), each burning 0.3 s of CPU with a state folder
    on its command line: only those naming the given folder count, each under its kind."""
    bin_dir, ours, theirs = tmp_path / "bin", tmp_path / "ours", tmp_path / "theirs"
    for d in (bin_dir, ours, theirs):
        d.mkdir()
    for name in ("java", "etcd"):
        (bin_dir / name).symlink_to(Path(sys.executable).resolve())
    assert servers_cpu_s(ours) == {"kafka": 0.0, "etcd": 0.0}, "no server runs from an empty folder"
    procs = [subprocess.Popen([str(bin_dir / name), "-c", BUSY, str(folder / "data")], stdout=subprocess.PIPE)
             for name in ("java", "etcd") for folder in (ours, theirs)]  # fmt: skip
    try:
        for p in procs:
            assert p.stdout is not None and p.stdout.readline().strip() == b"1"
        got = servers_cpu_s(ours)
        assert 0.25 <= got["kafka"] < 0.6 and 0.25 <= got["etcd"] < 0.6, f"one stand-in of each, not two: {got}"
    finally:
        for p in procs:
            p.kill()
            p.wait()

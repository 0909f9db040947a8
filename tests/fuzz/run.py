"""Coverage-guided fuzzing of corridor's decoders with atheris (libFuzzer), for a fixed time each:
`python -m tests.fuzz.run [--seconds 60] [TARGET ...]` (`make fuzz`). A crash, a leak past the
memory limit or an input slower than 10 s is written to tests/fuzz/regressions/<target>/, where
`test_regressions.py` replays it in `make test` from then on; the run exits non-zero."""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).parent
REGRESSIONS = HERE / "regressions"


def _child(target: str, corpus: Path, seconds: int) -> None:
    """The fuzzing process itself (libFuzzer takes over its argv)."""
    import atheris

    with atheris.instrument_imports(include=["towers", "pipeline.shared"]):
        from tests.fuzz.targets import TARGETS

    one = TARGETS[target]
    artifacts = REGRESSIONS / target
    artifacts.mkdir(parents=True, exist_ok=True)
    atheris.Setup([sys.argv[0], str(corpus), f"-max_total_time={seconds}", f"-artifact_prefix={artifacts}/",
                   "-rss_limit_mb=2048", "-timeout=10", "-print_final_stats=1"], one)  # fmt: skip
    atheris.Fuzz()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("targets", nargs="*", help="frames, records, states, radio (default: all)")
    parser.add_argument("--seconds", type=int, default=60, help="fuzzing time per target")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--corpus", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        _child(args.child, Path(args.corpus), args.seconds)
        return 0
    from tests.fuzz.seeds import seeds
    from tests.fuzz.targets import TARGETS

    targets = args.targets or list(TARGETS)
    unknown = set(targets) - set(TARGETS)
    if unknown:
        parser.error(f"unknown targets {sorted(unknown)}: choose from {sorted(TARGETS)}")
    failed = []
    for target in targets:
        with tempfile.TemporaryDirectory(prefix=f"fuzz-{target}-") as tmp:
            corpus = Path(tmp)
            for i, seed in enumerate(seeds()[target] + _kept(target)):
                (corpus / f"seed-{i}").write_bytes(seed)
            t0 = time.monotonic()
            done = subprocess.run([sys.executable, "-m", "tests.fuzz.run", "--child", target, "--corpus", str(corpus),
                                   "--seconds", str(args.seconds)], capture_output=True, text=True)  # fmt: skip
            stats = [line for line in done.stderr.splitlines() if line.startswith("stat::number_of_executed_units")]
            runs = stats[0].split(":")[-1].strip() if stats else "?"
            print(f"fuzz {target}: {runs} inputs in {time.monotonic() - t0:.0f} s, exit {done.returncode}")
            if done.returncode != 0:
                failed.append(target)
                print("\n".join(done.stderr.splitlines()[-40:]))
    if failed:
        print(f"fuzzing found inputs that break {failed}: kept under {REGRESSIONS}; commit them with the fix")
    return 1 if failed else 0


def _kept(target: str) -> list[bytes]:
    folder = REGRESSIONS / target
    return [p.read_bytes() for p in sorted(folder.glob("*"))] if folder.is_dir() else []


if __name__ == "__main__":
    sys.exit(main())

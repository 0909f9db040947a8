"""Kafka's jars, resolved from Maven Central with Maven into a cache outside the source tree.

The pom beside this module is the single place the Kafka version is pinned; the broker, Kafka's
CLI tools and the container image all take their classpath from the directory made here.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
from importlib import resources
from pathlib import Path

from pipeline.shared.errors import StackError

__all__ = ["KAFKA_VERSION", "classpath", "maven", "pom_path", "resolve_jars"]


def pom_path() -> Path:
    return Path(str(resources.files("pipeline.stack").joinpath("pom.xml")))


def _pinned_version() -> str:
    match = re.search(r"<kafka\.version>([^<]+)</kafka\.version>", pom_path().read_text())
    if match is None:  # pragma: no cover - the pom ships with the package
        raise StackError(f"{pom_path()} does not pin <kafka.version>")
    return match.group(1).strip()


KAFKA_VERSION = _pinned_version()
_COMPLETE = ".complete"


def jar_dir(cache_dir: Path) -> Path:
    return cache_dir / f"kafka-{KAFKA_VERSION}"


def classpath(directory: Path) -> str:
    return f"{directory}/*"


def maven() -> str:
    """The `mvn` that resolves what the stack runs from Maven Central, with a one-line error when there is none."""
    mvn = shutil.which("mvn")
    if mvn is None:
        raise StackError("Maven (mvn) is not on PATH: install Maven 3.8+ (e.g. apt-get install maven)")
    return mvn


def resolve_jars(cache_dir: Path, *, quiet: bool = True) -> Path:
    """Return the jar directory, running Maven first when it is missing or was left half-written."""
    target = jar_dir(cache_dir)
    if (target / _COMPLETE).exists():
        return target
    mvn = maven()
    cache_dir.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".kafka-{KAFKA_VERSION}-", dir=cache_dir))
    argv = [mvn, "-B", "-f", str(pom_path()), "dependency:copy-dependencies", f"-DoutputDirectory={staging}"]
    if quiet:
        argv.insert(1, "-q")
    result = subprocess.run(argv, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        shutil.rmtree(staging, ignore_errors=True)
        tail = "\n".join((result.stdout + result.stderr).strip().splitlines()[-8:])
        raise StackError(
            f"Maven could not resolve Kafka {KAFKA_VERSION}'s jars (mvn exited {result.returncode}); "
            f"check that Maven Central (or a mirror in ~/.m2/settings.xml) is reachable:\n{tail}"
        )
    (staging / _COMPLETE).write_text(KAFKA_VERSION + "\n")
    shutil.rmtree(target, ignore_errors=True)
    staging.rename(target)
    return target

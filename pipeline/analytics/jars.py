"""Spark's Kafka and Avro connectors, resolved once from Maven Central into corridor's cache.

Spark itself comes with pyspark; only the jars pyspark does not ship are kept (the connectors,
kafka-clients, commons-pool2), so the job's classpath holds one copy of each library.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
from importlib import resources
from pathlib import Path

from pipeline.shared.errors import StackError

__all__ = ["SPARK_VERSION", "connector_jars"]


def _pom() -> Path:
    return Path(str(resources.files("pipeline.analytics").joinpath("pom.xml")))


SPARK_VERSION = re.findall(r"<spark\.version>([^<]+)</spark\.version>", _pom().read_text())[0]
_COMPLETE = ".complete"


def _artifact(jar: str) -> str:
    """`kafka-clients-3.9.2.jar` → `kafka-clients`."""
    return re.sub(r"-\d[\w.\-]*\.jar$", "", jar)


def connector_jars(cache_dir: Path, spark_jars: Path) -> list[Path]:
    """The connector jars to add to a Spark session whose own jars are in `spark_jars`."""
    target = cache_dir / f"spark-connectors-{SPARK_VERSION}"
    if not (target / _COMPLETE).exists():
        mvn = shutil.which("mvn")
        if mvn is None:
            raise StackError("Maven (mvn) is not on PATH: install Maven 3.8+ (e.g. apt-get install maven)")
        cache_dir.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".spark-{SPARK_VERSION}-", dir=cache_dir))
        argv = [mvn, "-B", "-q", "-f", str(_pom()), "dependency:copy-dependencies", "-DincludeScope=runtime",
                f"-DoutputDirectory={staging}"]  # fmt: skip
        result = subprocess.run(argv, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            shutil.rmtree(staging, ignore_errors=True)
            tail = "\n".join((result.stdout + result.stderr).strip().splitlines()[-6:])
            raise StackError(f"Maven could not resolve Spark {SPARK_VERSION}'s Kafka and Avro connectors:\n{tail}")
        (staging / _COMPLETE).write_text(SPARK_VERSION + "\n")
        shutil.rmtree(target, ignore_errors=True)
        staging.rename(target)
    shipped = {_artifact(j.name) for j in spark_jars.glob("*.jar")}
    return sorted(j for j in target.glob("*.jar") if _artifact(j.name) not in shipped)

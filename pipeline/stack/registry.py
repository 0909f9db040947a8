"""The embedded schema registry: Apicurio Registry, its Quarkus bundle resolved from Maven Central.

Confluent's registry and Karapace are not installable from the registries corridor builds from;
Apicurio is, speaks the Confluent registry API (`/apis/ccompat/v7`) that confluent-kafka's
serializers, Kafka UIs and connectors use, and keeps its schemas in an H2 database file under the
state dir, so they outlive a restart and go with `stack down --purge`. It needs Java 21 or newer
(its classes are Java 21's), found beside the Java 17 that Kafka runs on. Both its ports, the API
and Quarkus' management interface (health, metrics), are bound to loopback. A user's own registry
(`SCHEMA_REGISTRY_URL`) replaces it.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path

from pipeline.ports import free_ports
from pipeline.schema_registry import registry_answers
from pipeline.shared.config import Settings
from pipeline.shared.errors import StackError
from pipeline.stack.jars import maven
from pipeline.stack.process import ManagedProcess, ensure_port_free

__all__ = ["APICURIO_VERSION", "RegistryServer", "registry_java", "resolve_registry"]

APICURIO_VERSION = "3.3.3"
_ARTIFACT = f"io.apicurio:apicurio-registry-app:{APICURIO_VERSION}:tar.gz:all"
_MIN_JAVA = 21
_COMPLETE = ".complete"
READY_TIMEOUT_S = 90.0


def _java_version(java: Path) -> int:
    try:
        out = subprocess.run([str(java), "-version"], capture_output=True, text=True, timeout=20).stderr
    except (OSError, subprocess.SubprocessError):
        return 0
    match = re.search(r'version "(\d+)', out)
    return int(match.group(1)) if match else 0


def registry_java() -> Path:
    """A Java 21+ runtime: `java` on PATH if it is one, else the newest JDK under /usr/lib/jvm."""
    found = [Path(j) for j in (shutil.which("java"),) if j]
    found += sorted(Path("/usr/lib/jvm").glob("*/bin/java"), reverse=True)
    versions = {java: _java_version(java) for java in found}
    fit = [java for java, v in versions.items() if v >= _MIN_JAVA]
    if not fit:
        raise StackError(f"the schema registry (Apicurio {APICURIO_VERSION}) needs Java {_MIN_JAVA}+, and none is "
                         "installed: install one (e.g. a Temurin 21 JDK), or set SCHEMA_REGISTRY_URL")  # fmt: skip
    return max(fit, key=lambda java: versions[java])


def resolve_registry(cache_dir: Path) -> Path:
    """The unpacked Apicurio bundle, fetched with Maven into the cache when it is missing."""
    target = cache_dir / f"apicurio-registry-{APICURIO_VERSION}"
    if (target / _COMPLETE).exists():
        return target
    mvn = maven()
    cache_dir.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".apicurio-", dir=cache_dir))
    try:
        argv = [mvn, "-q", "-B", "dependency:copy", f"-Dartifact={_ARTIFACT}", f"-DoutputDirectory={staging}"]
        result = subprocess.run(argv, capture_output=True, text=True, check=False)
        bundle = staging / f"apicurio-registry-app-{APICURIO_VERSION}-all.tar.gz"
        if result.returncode != 0 or not bundle.is_file():
            tail = "\n".join((result.stdout + result.stderr).strip().splitlines()[-6:])
            raise StackError(f"Maven could not fetch {_ARTIFACT} (mvn exited {result.returncode}):\n{tail}")
        with tarfile.open(bundle) as tar:
            tar.extractall(staging / "app", filter="data")
        bundle.unlink()
        if not (staging / "app" / "quarkus-run.jar").is_file():
            raise StackError(f"{_ARTIFACT} holds no quarkus-run.jar")
        (staging / "app" / _COMPLETE).write_text(APICURIO_VERSION + "\n")
        shutil.rmtree(target, ignore_errors=True)
        (staging / "app").rename(target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


@dataclass(frozen=True, slots=True)
class RegistryServer:
    """Files and process of the embedded registry, all under `<state_dir>/registry`."""

    settings: Settings

    @property
    def home(self) -> Path:
        return self.settings.state_dir.resolve() / "registry"

    @property
    def process(self) -> ManagedProcess:
        return ManagedProcess("registry", self.home / "registry.pid", self.home / "registry.log", "quarkus-run.jar")

    def start(self, *, attached: bool) -> bool:
        if self.process.running_pid() is not None:
            return False
        port = self.settings.ports.registry
        ensure_port_free(port, "schema registry", "CORRIDOR_REGISTRY_PORT")
        bundle = resolve_registry(self.settings.cache_dir)
        java = registry_java()
        self.home.mkdir(parents=True, exist_ok=True)
        (management,) = free_ports(1)
        props = {
            "quarkus.http.host": "127.0.0.1",
            "quarkus.http.port": port,
            "quarkus.management.host": "127.0.0.1",  # its default is every interface
            "quarkus.management.port": management,
            "apicurio.datasource.url": f"jdbc:h2:file:{self.home / 'data' / 'registry'}",
            # the default pool keeps 20 connections open: a few serve one corridor
            "apicurio.datasource.jdbc.initial-size": 2,
            "apicurio.datasource.jdbc.min-size": 2,
            "apicurio.datasource.jdbc.max-size": 10,
        }
        argv = [str(java), "-Xmx256m", *(f"-D{k}={v}" for k, v in props.items()), "-jar",
                str(bundle / "quarkus-run.jar")]  # fmt: skip
        self.process.launch(argv, cwd=self.home, attached=attached, ready=self.ready, timeout=READY_TIMEOUT_S,
                            what="the schema registry")  # fmt: skip
        return True

    def stop(self) -> bool:
        return self.process.stop(timeout=15.0)

    def ready(self) -> bool:
        return registry_answers(self.settings.schema_registry_url, timeout=1.0)

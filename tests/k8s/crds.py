"""The operators' CRD schemas the manifests are validated against, offline: Strimzi's from the `tests`
jar of io.strimzi:api on Maven Central (its crds/ folder), resolved by Maven into corridor's cache as
Kafka's jars are; the Prometheus Operator's from its Go module (example/prometheus-operator-crd/),
downloaded by `go mod download` from the Go module proxy into Go's module cache."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import zipfile
from pathlib import Path
from typing import Any

import yaml

STRIMZI_VERSION = "0.49.0"
PROMETHEUS_OPERATOR = "github.com/prometheus-operator/prometheus-operator@v0.85.0"
DEPENDENCY_PLUGIN = "org.apache.maven.plugins:maven-dependency-plugin:3.8.1"
ARTIFACT = f"io.strimzi:api:{STRIMZI_VERSION}:jar:tests"


def strimzi_schemas(cache_dir: Path, api_version: str = "v1beta2") -> dict[str, dict[str, Any]]:
    """Kind → the openAPIV3Schema of that kind at `api_version` (e.g. "Kafka", "KafkaTopic")."""
    jar = cache_dir / f"strimzi-{STRIMZI_VERSION}" / f"api-{STRIMZI_VERSION}-tests.jar"
    if not jar.exists():
        mvn = shutil.which("mvn")
        assert mvn is not None, "Maven (mvn) is needed to fetch Strimzi's CRDs from Maven Central"
        done = subprocess.run(
            [mvn, "-B", "-q", f"{DEPENDENCY_PLUGIN}:copy", f"-Dartifact={ARTIFACT}", f"-DoutputDirectory={jar.parent}"],
            capture_output=True,
            text=True,
        )
        assert done.returncode == 0, f"Maven could not fetch {ARTIFACT}: {done.stdout[-500:]}"
    schemas: dict[str, dict[str, Any]] = {}
    with zipfile.ZipFile(jar) as z:
        for name in z.namelist():
            if not (name.startswith(f"crds/{api_version}/") and name.endswith(".yaml")):
                continue
            crd = yaml.safe_load(z.read(name))
            for version in crd["spec"]["versions"]:
                if version["name"] == api_version:
                    schemas[crd["spec"]["names"]["kind"]] = version["schema"]["openAPIV3Schema"]
    return schemas


def prometheus_operator_schemas(kinds: tuple[str, ...] = ("podmonitors", "prometheusrules")) -> dict[str, Any]:
    """Kind → the openAPIV3Schema of its served version (e.g. "PodMonitor", "PrometheusRule")."""
    go = shutil.which("go") or ("/usr/local/go/bin/go" if Path("/usr/local/go/bin/go").exists() else None)
    assert go is not None, "Go is needed to fetch the Prometheus Operator's CRDs from the Go module proxy"
    done = subprocess.run([go, "mod", "download", "-json", PROMETHEUS_OPERATOR], capture_output=True, text=True,
                          env={**os.environ, "GOFLAGS": "-mod=mod"}, cwd=Path(__file__).parent)  # fmt: skip
    assert done.returncode == 0, f"the Go module proxy did not serve {PROMETHEUS_OPERATOR}: {done.stderr[-500:]}"
    folder = Path(json.loads(done.stdout)["Dir"]) / "example" / "prometheus-operator-crd"
    schemas: dict[str, dict[str, Any]] = {}
    for plural in kinds:
        crd = yaml.safe_load((folder / f"monitoring.coreos.com_{plural}.yaml").read_text())
        (served,) = [v for v in crd["spec"]["versions"] if v.get("storage")]
        schemas[crd["spec"]["names"]["kind"]] = served["schema"]["openAPIV3Schema"]
    return schemas

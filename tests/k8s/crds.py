"""Strimzi's CRD schemas, from the `tests` jar of io.strimzi:api on Maven Central (its crds/ folder),
resolved by Maven into corridor's cache, as Kafka's jars are."""

from __future__ import annotations

import shutil
import subprocess
import zipfile
from pathlib import Path
from typing import Any

import yaml

STRIMZI_VERSION = "0.49.0"
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

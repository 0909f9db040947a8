"""Finding a Java 17+ runtime, with a one-line error when there is none."""

from __future__ import annotations

import re
import shutil
import subprocess

from pipeline.shared.errors import StackError

__all__ = ["java_executable"]

_MIN_JAVA = 17


def java_executable() -> str:
    java = shutil.which("java")
    if java is None:
        raise StackError(
            f"Java is not on PATH: Kafka needs Java {_MIN_JAVA}+ (e.g. apt-get install openjdk-17-jre-headless)"
        )
    out = subprocess.run([java, "-version"], capture_output=True, text=True, check=False).stderr
    match = re.search(r'version "(\d+)', out)
    if match is None or int(match.group(1)) < _MIN_JAVA:
        found = match.group(1) if match else "unknown"
        raise StackError(f"{java} is Java {found}; Kafka {_MIN_JAVA}+ is needed: install a newer JRE")
    return java

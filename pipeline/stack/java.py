"""Finding a Java 17+ runtime, with a one-line error when there is none."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from pipeline.shared.errors import StackError

__all__ = ["argfile_text", "java_argfile", "java_executable"]

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


def argfile_text(args: Sequence[str]) -> str:
    """`args` as a Java launcher argument file: each quoted, backslashes and quotes escaped."""
    return "".join('"' + a.replace("\\", "\\\\").replace('"', '\\"') + '"\n' for a in args)


@contextmanager
def java_argfile(args: Sequence[str], folder: Path) -> Iterator[str]:
    """`@file` for `java`, holding `args`: what the launcher reads from a file (mode 600, deleted
    afterwards) is on no command line, so `ps` shows no password handed to a tool this way."""
    path = folder / f".java-args-{os.getpid()}"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(fd, "w") as fh:
            fh.write(argfile_text(args))
        yield f"@{path}"
    finally:
        path.unlink(missing_ok=True)

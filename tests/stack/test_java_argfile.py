"""Arguments handed to `java` through an argument file: read back by the real launcher, on no
command line."""

from __future__ import annotations

import subprocess
from pathlib import Path

from pipeline.stack.java import java_argfile, java_executable

TRICKY = 'a b "quoted" back\\slash [name=admin,password=s3cr=t]'


def test_the_launcher_reads_each_argument_back_whole_and_the_file_is_gone(tmp_path: Path) -> None:
    args = [f"-Dcorridor.probe={TRICKY}", "-XshowSettings:properties", "-version"]
    with java_argfile(args, tmp_path) as argfile:
        assert (Path(argfile[1:]).stat().st_mode & 0o777) == 0o600, "only its owner reads it"
        shown = subprocess.run([java_executable(), argfile], capture_output=True, text=True, check=True).stderr
    assert f"corridor.probe = {TRICKY}" in shown
    assert list(tmp_path.iterdir()) == [], "deleted once the tool has read it"

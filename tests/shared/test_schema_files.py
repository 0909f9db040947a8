"""A proposed edit of the schemas that cannot be read is refused in one line, before any registry is asked."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

import schemas
from pipeline.schema_registry import check_schemas
from pipeline.shared.config import Ports, Settings
from pipeline.shared.errors import ConfigError

NOWHERE = Settings(ports=Ports(registry=1))  # nothing answers there: it must not be reached


def copy(tmp_path: Path) -> Path:
    folder = tmp_path / "schemas"
    shutil.copytree(Path(schemas.__file__).parent, folder, ignore=shutil.ignore_patterns("*.py", "__pycache__"))
    return folder


def test_a_missing_file_is_named(tmp_path: Path) -> None:
    folder = copy(tmp_path)
    (folder / "vehicle_telemetry.avsc").unlink()
    with pytest.raises(ConfigError, match=r"vehicle_telemetry\.avsc in .*No such file"):
        check_schemas(NOWHERE, folder)


def test_a_file_that_is_not_json_is_named(tmp_path: Path) -> None:
    folder = copy(tmp_path)
    (folder / "vehicle_telemetry.avsc").write_text('{"type": "record", ')
    with pytest.raises(ConfigError, match=r"vehicle_telemetry\.avsc in .*Expecting"):
        check_schemas(NOWHERE, folder)

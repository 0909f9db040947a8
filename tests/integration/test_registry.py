"""The schema registry, for real (Apicurio, started here): a run in the Confluent wire format that
code no one here wrote decodes, and schema edits the registry would refuse caught before they land."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

import schemas
from pipeline.schema_registry import register_schemas
from pipeline.shared.codec import CONFLUENT_MAGIC
from pipeline.shared.config import Settings
from pipeline.shared.errors import ConfigError, StackError
from pipeline.shared.messages import CODEC
from pipeline.simulation.runner import run_scenario
from pipeline.simulation.scenario import parse_scenario
from pipeline.stack import Stack
from pipeline.stack.registry import RegistryServer, registry_java
from tests.helpers import corridor, read_messages, skip_or_fail

pytestmark = pytest.mark.integration

READER = Path(__file__).with_name("registry_reader.py")
DEER = {
    "name": "confluent", "description": "a deer near Martinsville, every record in the Confluent wire format",
    "vehicles": 120, "hz": 1, "speedup": 6, "duration_s": 60, "workers": 2, "seed": 3,
    "events": [{"at_s": 20, "hazard": {"km": 36.0, "type": "ANIMAL", "direction": "NORTHBOUND", "id": "deer"}}],
}  # fmt: skip


@pytest.fixture(scope="module", autouse=True)
def java_21() -> None:
    """Apicurio's Java 21+ (machines of CI's kind carry one beside Java 17): a failure in CI (strict)."""
    try:
        registry_java()
    except StackError as exc:
        skip_or_fail(str(exc))


@pytest.fixture(scope="module")
def registry(stack: Stack) -> Iterator[Settings]:
    """The embedded registry beside the session's stack, corridor's schemas in it."""
    server = RegistryServer(stack.settings)
    started = server.start(attached=True)
    try:
        register_schemas(stack.settings)
        yield stack.settings
    finally:
        if started:
            server.stop()


def edited(tmp_path: Path, stem: str, field: dict[str, object]) -> Path:
    """A copy of corridor's schemas in which `stem` gains `field`."""
    folder = tmp_path / "schemas"
    shutil.copytree(Path(schemas.__file__).parent, folder, ignore=shutil.ignore_patterns("*.py", "__pycache__"))
    path = folder / f"{stem}.avsc"
    schema = json.loads(path.read_text())
    schema["fields"].append(field)
    path.write_text(json.dumps(schema))
    return folder


def test_a_run_in_the_confluent_format_is_decoded_by_a_plain_confluent_kafka_consumer(
    registry: Settings, tmp_path: Path
) -> None:
    settings = replace(registry, wire="confluent", topic_prefix=f"cf{uuid.uuid4().hex[:8]}")
    try:
        result = run_scenario(parse_scenario(DEER, "confluent"), settings, tmp_path / "report")
    finally:
        CODEC.use_registry_ids({}, "single-object")  # this process's codec, as the other tests expect it
    s = result.summary
    assert not s["partial"] and s["run"]["dead_letters"] == 0 and s["run"]["towers_converged"]
    assert s["hazards"]["deer"]["advisories"] > 0, "the towers read the Confluent frames and advised"
    topics = settings.topics(9)
    names = [topics.telemetry, topics.hazards, topics.advisories, topics.tower_sync]
    for name in names:
        (first,) = read_messages(settings.bootstrap_servers, name, 1)
        assert first.value()[:1] == CONFLUENT_MAGIC, f"{name} is written in the Confluent format"
    out = subprocess.run([sys.executable, str(READER), settings.bootstrap_servers, settings.schema_registry_url,
                          *names], capture_output=True, text=True, timeout=240)  # fmt: skip
    registry_process = RegistryServer(registry).process
    assert out.returncode == 0, (out.stderr[-2000:], registry_process.tail())
    seen = json.loads(out.stdout)
    for name in names:
        assert seen[name]["read"] > 0 and seen[name]["decoded"] == seen[name]["read"], (name, seen[name])
        assert seen[name]["unread_partitions"] == [], (name, seen[name])
    assert seen[topics.telemetry]["kinds"] == ["frame"] and seen[topics.telemetry]["read"] >= 60 * 9 // 2


def test_an_incompatible_edit_is_refused_by_check_and_by_the_registry_and_a_compatible_one_passes(
    registry: Settings, cli_env: dict[str, str], tmp_path: Path
) -> None:
    env = {**cli_env, "CORRIDOR_TOPIC_PREFIX": registry.topic_prefix}  # its subjects are named after its topics
    required = edited(tmp_path / "a", "hazard_report", {"name": "confidence", "type": "int"})
    refused = corridor(env, "schemas", "check", "--dir", str(required))
    assert refused.returncode == 1, refused.stdout + refused.stderr
    assert f"{registry.topic_prefix}.hazards-value" in refused.stdout and "FULL_TRANSITIVE" in refused.stdout
    with pytest.raises(ConfigError, match=r"refused .*hazards-value: incompatible"):
        register_schemas(registry, required)
    optional = edited(tmp_path / "b", "hazard_report", {"name": "confidence", "type": "int", "default": 0})
    fits = corridor(env, "schemas", "check", "--dir", str(optional))
    assert fits.returncode == 0 and "every subject fits" in fits.stdout, fits.stdout + fits.stderr


def test_check_without_a_registry_starts_one_and_judges_against_corridors_own_schemas(
    cli_env: dict[str, str], tmp_path: Path
) -> None:
    env = {**cli_env, "CORRIDOR_REGISTRY_PORT": "1"}  # nothing answers there: the check brings its own
    fine = corridor(env, "schemas", "check")
    assert fine.returncode == 0 and "corridor's own schemas" in fine.stdout, fine.stdout + fine.stderr
    renamed = edited(tmp_path, "control_advisory", {"name": "priority", "type": "string"})
    refused = corridor(env, "schemas", "check", "--dir", str(renamed))
    assert refused.returncode == 1 and "advisories-value" in refused.stdout, refused.stdout + refused.stderr

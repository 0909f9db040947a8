"""corridor's schemas in a schema registry: registered under their subjects, checked before an edit
reaches a topic, and their ids given to the codec so that this process writes (and reads) the
Confluent wire format.

The registry is reached through its Confluent API with confluent-kafka's own client; the codec
never asks it per record: the ids of every schema corridor knows are looked up once, at start.
"""

from __future__ import annotations

import base64
import json
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from confluent_kafka.schema_registry import Schema as RegistrySchema
from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.error import SchemaRegistryError

import schemas
from pipeline.shared.config import Settings
from pipeline.shared.errors import ConfigError, StackError
from pipeline.shared.messages import CODEC
from pipeline.shared.subjects import Subject, subjects

__all__ = [
    "Registered",
    "basic_auth",
    "check_schemas",
    "register_schemas",
    "registry_answers",
    "registry_client",
    "registry_up",
    "use_wire",
]  # fmt: skip

_TIMEOUT_S = 10


@dataclass(frozen=True, slots=True)
class Registered:
    subject: str
    ids: tuple[int, ...]  # each version's schema id, oldest first
    compatibility: str


def basic_auth(settings: Settings) -> dict[str, str]:
    """An HTTP basic authorization header for the user's registry, when they gave a user."""
    if settings.registry_auth is None:
        return {}
    return {"Authorization": "Basic " + base64.b64encode(":".join(settings.registry_auth).encode()).decode()}


def registry_answers(url: str, timeout: float = 2.0, headers: dict[str, str] | None = None) -> bool:
    """Whether a Confluent-API registry answers its subject list at `url`."""
    try:
        request = urllib.request.Request(f"{url}/subjects", headers=headers or {})
        with urllib.request.urlopen(request, timeout=timeout) as resp:
            return isinstance(json.loads(resp.read()), list)
    except (urllib.error.URLError, OSError, ValueError):
        return False


def registry_up(settings: Settings, timeout: float = 2.0) -> bool:
    """Whether the configured registry (the user's, or the embedded one) answers, with its credentials."""
    return registry_answers(settings.schema_registry_url, timeout, basic_auth(settings))


def registry_client(settings: Settings) -> SchemaRegistryClient:
    conf: dict[str, Any] = {"url": settings.schema_registry_url, "timeout": _TIMEOUT_S}
    if settings.registry_auth is not None:
        conf["basic.auth.user.info"] = ":".join(settings.registry_auth)
    return SchemaRegistryClient(conf)


def _text(stem: str, root: Path | None) -> RegistrySchema:
    try:
        return RegistrySchema(json.dumps(schemas.load(stem, root), sort_keys=True), "AVRO")
    except (OSError, ValueError) as exc:  # a proposed edit's file missing, or not JSON
        raise ConfigError(f"{stem}.avsc in {root or 'corridor'}: {exc}") from None


def _refused(settings: Settings, exc: SchemaRegistryError | Exception) -> StackError:
    return StackError(f"the schema registry at {settings.schema_registry_url} refused or did not answer: "
                      f"{str(exc).splitlines()[0] if str(exc) else type(exc).__name__}")  # fmt: skip


def _subjects(settings: Settings) -> list[Subject]:
    return subjects(settings.topics(len(settings.corridor().regions)))


def register_schemas(settings: Settings, root: Path | None = None) -> list[Registered]:
    """Every subject's compatibility level, then its versions oldest first (registering a version
    the registry holds already changes nothing). The registry refuses an incompatible one."""
    client, out = registry_client(settings), []
    for subject in _subjects(settings):
        try:
            client.set_compatibility(subject.name, subject.compatibility)
            ids = tuple(client.register_schema(subject.name, _text(stem, root)) for stem in subject.files)
        except SchemaRegistryError as exc:
            if exc.http_status_code == 409:
                raise ConfigError(f"the registry refused {subject.name}: incompatible with its registered versions "
                                  f"under {subject.compatibility}") from None  # fmt: skip
            raise _refused(settings, exc) from None
        except Exception as exc:  # the client's HTTP layer raises its own types when nothing answers
            raise _refused(settings, exc) from None
        out.append(Registered(subject.name, ids, subject.compatibility))
    return out


def check_schemas(settings: Settings, root: Path | None = None) -> list[str]:
    """What the registry would refuse of the schemas in `root` (corridor's own by default): one line
    per subject whose newest file does not fit its registered versions under its level."""
    client, problems = registry_client(settings), []
    for subject in _subjects(settings):
        newest = _text(subject.files[-1], root)
        try:
            if not client.get_versions(subject.name):
                continue
        except SchemaRegistryError as exc:
            if exc.http_status_code == 404:
                continue  # a new subject: anything fits
            raise _refused(settings, exc) from None
        except Exception as exc:
            raise _refused(settings, exc) from None
        try:
            ok = client.test_compatibility(subject.name, newest)
        except Exception as exc:
            raise _refused(settings, exc) from None
        if not ok:
            problems.append(f"{subject.name}: {subject.files[-1]}.avsc is not {subject.compatibility} with the "
                            "versions registered")  # fmt: skip
    return problems


def registry_ids(settings: Settings) -> dict[bytes, int]:
    """The registry's id of every schema the codec knows (fingerprint → id), looked up once."""
    client, ids = registry_client(settings), {}
    known = {s.fingerprint for s in CODEC.schemas}
    for subject in _subjects(settings):
        for stem, schema in zip(subject.files, subject.versions(), strict=True):
            if schema.fingerprint not in known:
                continue
            try:
                sid = client.lookup_schema(subject.name, _text(stem, None)).schema_id
            except SchemaRegistryError as exc:
                if exc.http_status_code == 404:
                    where = settings.schema_registry_url
                    raise ConfigError(f"{stem}.avsc is not registered under {subject.name} at {where}: "
                                      "run `corridor schemas register`") from None  # fmt: skip
                raise _refused(settings, exc) from None
            except Exception as exc:
                raise _refused(settings, exc) from None
            if sid is None:
                raise _refused(settings, ValueError(f"no id for {stem}.avsc under {subject.name}"))
            ids[schema.fingerprint] = sid
    return ids


def use_wire(settings: Settings, wait_s: float = 120.0) -> None:
    """Give the codec the registry's ids when a registry is in use: to write the Confluent format
    when `settings.wire` says so, and to read it either way. Writing it, a process waits up to
    `wait_s` for the registry and its subjects (pods start in any order) and then stops with the
    reason; only reading it, a process goes on with single-object records and says why."""
    confluent = settings.wire == "confluent"
    if (
        not confluent
        and not settings.registry_external
        and not registry_answers(settings.schema_registry_url, 0.5, basic_auth(settings))
    ):
        return  # no registry: single-object only, and a Confluent record is dead-lettered as unknown
    deadline, said = time.monotonic() + (wait_s if confluent else 0.0), -1.0
    while True:
        try:
            CODEC.use_registry_ids(registry_ids(settings), settings.wire)
            return
        except (ConfigError, StackError) as exc:
            if not confluent:
                print(f"corridor: reading single-object records only: {exc}", file=sys.stderr)
                return
            if time.monotonic() >= deadline:
                raise
            if time.monotonic() - said > 15:
                print(f"corridor: waiting for the schema registry: {exc}", file=sys.stderr)
                said = time.monotonic()
            time.sleep(2.0)

"""What a bench, drill or run leaves on the broker and in etcd, noted before it is made.

Each owner writes a note under `<state dir>/leftovers/` naming the prefix of everything it will
create (topics, consumer groups, etcd namespaces under `/corridor/`) and its working directories,
with its process id. When it ends, however it ends short of being killed, it deletes them and the
note. A note whose process is gone (killed with SIGKILL, say, or its machine rebooted) is acted on
by the next command that brings the stack up (`Stack.up`): nothing a dead bench made outlives it
for long, and no later run picks it up.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import shutil
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from confluent_kafka import KafkaException

from pipeline.admin import delete_groups, delete_topics, list_groups, list_topic_names
from pipeline.shared.access import Role
from pipeline.shared.config import Settings
from towers.control_plane import ROOT, close_client, open_client

__all__ = ["clean", "owned", "scratch_prefix", "sweep"]

log = logging.getLogger(__name__)
_PREFIX = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{5,120}")
_current: list[str] = []  # the prefix of the innermost `owned` block of this process


def _notes(settings: Settings) -> Path:
    return settings.state_dir.resolve() / "leftovers"


def _started(pid: int) -> int | None:
    """The process's start time (clock ticks after boot), which tells it from a later one given its id."""
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19])
    except (OSError, IndexError, ValueError):
        return None


def scratch_prefix(tag: str) -> str:
    """A fresh name prefix for what a bench section or a drill creates, under the block it runs in
    (so that it is deleted with the block's); outside one, just a fresh prefix."""
    fresh = f"{tag}{uuid.uuid4().hex[:6]}"
    return f"{_current[-1]}-{fresh}" if _current else fresh


@contextlib.contextmanager
def owned(settings: Settings, kind: str, prefix: str | None = None, dirs: tuple[Path, ...] = ()) -> Iterator[str]:
    """Note, yield and finally delete everything named `prefix…` (a fresh one by default)."""
    prefix = prefix or f"{kind}-{uuid.uuid4().hex[:8]}"
    if not _PREFIX.fullmatch(prefix):
        raise ValueError(f"a leftovers prefix is 6-121 characters of A-Z, a-z, 0-9, '.', '_' and '-', not {prefix!r}")
    note = _notes(settings) / f"{prefix}.json"
    note.parent.mkdir(parents=True, exist_ok=True)
    pid = os.getpid()
    note.write_text(json.dumps({"kind": kind, "prefix": prefix, "pid": pid, "started": _started(pid),
                                "dirs": [str(d.resolve()) for d in dirs]}))  # fmt: skip
    _current.append(prefix)
    try:
        yield prefix
    finally:
        _current.remove(prefix)
        if not clean(settings, note):
            print(f"corridor: what {prefix} made could not be deleted now; the next command that brings the "
                  "stack up deletes it", file=sys.stderr)  # fmt: skip


def clean(settings: Settings, note: Path) -> bool:
    """Delete what `note` names, then the note; False (the note kept) when the stack did not answer."""
    try:
        record: dict[str, Any] = json.loads(note.read_text())
        prefix = record["prefix"]
        if not isinstance(prefix, str) or not _PREFIX.fullmatch(prefix):
            raise ValueError(f"prefix {prefix!r}")
    except (OSError, ValueError, KeyError, TypeError) as exc:
        log.warning("leftovers note %s is unreadable (%s): removed", note.name, exc)
        note.unlink(missing_ok=True)
        return True
    try:
        kafka = settings.kafka(Role.ADMIN)
        topics = [t for t in list_topic_names(kafka, timeout=10) if t.startswith(prefix)]
        if topics:
            delete_topics(kafka, topics, timeout=10)
        groups = [g for g in list_groups(kafka, timeout=10) if g.startswith(prefix)]
        if groups:
            delete_groups(kafka, groups, timeout=25)
        client = open_client(settings.etcd(Role.ADMIN), 5)
        try:
            client.delete_prefix(f"{ROOT}/{prefix}")
        finally:
            close_client(client)
    except Exception as exc:  # the broker or etcd away: kept for the next sweep
        log.warning("leftovers of %s not deleted yet (%s: %s)", prefix, type(exc).__name__, exc)
        return False
    for d in record.get("dirs", []):
        if isinstance(d, str) and d.startswith(str(settings.state_dir.resolve())):
            shutil.rmtree(d, ignore_errors=True)
    note.unlink(missing_ok=True)
    return True


def sweep(settings: Settings) -> list[str]:
    """Act on the notes of owners that are gone; returns their prefixes."""
    folder = _notes(settings)
    if not folder.is_dir():
        return []
    done = []
    for note in sorted(folder.glob("*.json")):
        try:
            record = json.loads(note.read_text())
            pid, started = int(record["pid"]), record.get("started")
        except (OSError, ValueError, KeyError, TypeError):
            pid, started = -1, None
        if pid > 0 and started is not None and _started(pid) == started:
            continue  # its owner is still at work
        with contextlib.suppress(KafkaException):
            if clean(settings, note):
                done.append(note.stem)
    return done

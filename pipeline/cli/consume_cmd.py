"""`corridor consume TOPIC`: the console consumer that understands corridor's Avro, as JSON lines."""

from __future__ import annotations

import json
import sys
import time
import uuid
from typing import Annotated, Any

import typer
from confluent_kafka import OFFSET_BEGINNING, OFFSET_END, Consumer, KafkaError, KafkaException, TopicPartition

from pipeline.schema_registry import use_wire
from pipeline.shared.access import Role, client_conf
from pipeline.shared.config import Settings
from pipeline.shared.crdt import decode_state
from pipeline.shared.errors import ConfigError, StackError
from pipeline.shared.messages import CODEC, FRAME, SYNC

__all__ = ["consume", "records_of"]

#: a consumer's errors that no wait mends: the principal may not read the topic or join its group
REFUSED = (KafkaError.TOPIC_AUTHORIZATION_FAILED, KafkaError.GROUP_AUTHORIZATION_FAILED)
#: reading to the end, how long the broker may send nothing while records are left before it is judged gone
STALLED_S = 15.0


def records_of(value: bytes) -> list[dict[str, Any]]:
    """The JSON-able records in one Kafka value: a frame becomes one line per vehicle update."""
    writer = CODEC.writer_of(value)
    rec = CODEC.decode(value)
    if writer is FRAME:
        return [{"_frame": rec["frame_seq"], **u} for u in rec["updates"]]
    if writer is SYNC:
        for key in ("members", "hazards"):
            if rec[key] is not None:
                rec[key] = decode_state(rec[key]).to_record()
    return [rec]


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, bytes):
        return obj.hex()
    if isinstance(obj, set | frozenset | tuple):
        return list(obj)
    return str(obj)


def consume(
    ctx: typer.Context,
    topic: Annotated[
        str,
        typer.Argument(
            help="topic name, or a short one: telemetry, hazards, advisories, tower-sync, dead-letter, corridor-stats"
        ),
    ],
    from_beginning: Annotated[bool, typer.Option(help="start at the oldest record (default: only new ones)")] = False,
    follow: Annotated[bool, typer.Option(help="keep reading new records (default: stop at the end)")] = False,
    region: Annotated[int | None, typer.Option(help="only this tower region (partition)")] = None,
    vehicle: Annotated[str | None, typer.Option(help="only records about this vehicle id")] = None,
    max_records: Annotated[int | None, typer.Option(help="stop after this many lines")] = None,
    mqtt: Annotated[
        bool, typer.Option(help="read the radio link's MQTT broker instead: TOPIC is a filter or a short name")
    ] = False,
) -> None:
    """Print a topic's records as JSON lines, decoded with corridor's schemas (frames one line per vehicle)."""
    settings: Settings = ctx.obj
    use_wire(settings)
    if mqtt:
        return _consume_mqtt(settings, topic, follow, vehicle, max_records)
    short = {"telemetry", "hazards", "advisories", "tower-sync", "dead-letter", "corridor-stats"}
    name = f"{settings.topic_prefix}.{topic}" if topic in short else topic
    consumer = Consumer(client_conf(settings.kafka(Role.READER), {"group.id": f"consume-{uuid.uuid4().hex[:8]}",
                         "enable.auto.commit": False, "log_level": 0}))  # fmt: skip
    try:
        meta = consumer.list_topics(name, timeout=10).topics.get(name)
    except KafkaException as exc:
        raise StackError(f"Kafka at {settings.bootstrap_servers} did not answer: {exc.args[0].str()}") from None
    if meta is None or meta.error is not None or not meta.partitions:
        raise ConfigError(f"topic {name} does not exist (list them with `corridor kafka topics --list`)")
    parts = sorted(meta.partitions) if region is None else [region]
    if region is not None and region not in meta.partitions:
        raise ConfigError(f"topic {name} has no partition {region} (0–{len(meta.partitions) - 1})")
    start = OFFSET_BEGINNING if from_beginning else OFFSET_END
    marks = {p: consumer.get_watermark_offsets(TopicPartition(name, p), timeout=10) for p in parts}
    consumer.assign([TopicPartition(name, p, start) for p in parts])
    printed, idle_since = 0, time.monotonic()
    try:
        while max_records is None or printed < max_records:
            msg = consumer.poll(0.5)
            if msg is None:
                if follow:
                    continue
                left = 0 if not from_beginning else _left(consumer, name, marks)
                quiet = time.monotonic() - idle_since
                if left == 0 and quiet > 1.0:
                    break
                if left and quiet > STALLED_S:  # a broker gone or paused mid-read: waiting would never end
                    said = f"{STALLED_S:.0f} s, {left} records before its end ({printed} lines printed)"
                    raise StackError(f"Kafka at {settings.bootstrap_servers} sent nothing of {name} for {said}")
                continue
            if (error := msg.error()) is not None:
                if error.fatal() or error.code() in REFUSED:  # waiting would never end: say so
                    raise StackError(f"reading {name} as {settings.kafka(Role.READER).who}: {error.str()}")
                continue  # not a record: no progress
            idle_since = time.monotonic()
            meta_fields: dict[str, Any] = {"_partition": msg.partition(), "_offset": msg.offset()}
            given = msg.headers() or []
            if given:  # a dead letter's reason and source travel in its headers
                meta_fields["_headers"] = {
                    k: _text(v) for k, v in (given.items() if isinstance(given, dict) else given)
                }
            raw = msg.value() or b""  # a tombstone reads as empty: undecodable, and said so
            try:
                lines = records_of(raw)
            except Exception as exc:
                lines = [{"_undecodable": str(exc), "_bytes": len(raw), "_head": raw[:32].hex()}]
            for line in lines:
                if vehicle is not None and vehicle not in (line.get("vehicle_id"), line.get("target_vehicle")):
                    continue
                sys.stdout.write(json.dumps({**meta_fields, **line}, default=_jsonable) + "\n")
                printed += 1
                if max_records is not None and printed >= max_records:
                    break
            sys.stdout.flush()
    except KeyboardInterrupt:
        pass
    finally:
        consumer.close()


def _left(consumer: Consumer, name: str, marks: dict[int, tuple[int, int]]) -> int:
    """Records between where each partition is read (its oldest, before its first fetch) and where it
    ended when the read began."""
    at = consumer.position([TopicPartition(name, p) for p in marks])
    return sum(max(0, marks[tp.partition][1] - max(tp.offset, marks[tp.partition][0])) for tp in at)


def _text(value: str | bytes | None) -> str | None:
    return value.decode(errors="replace") if isinstance(value, bytes) else value


def _consume_mqtt(settings: Settings, topic: str, follow: bool, vehicle: str | None, max_records: int | None) -> None:
    """The MQTT side, as `mosquitto_sub` would show it but decoded; stops after 2 s of silence
    unless `follow`."""
    import queue

    import paho.mqtt.client as paho
    from paho.mqtt.enums import CallbackAPIVersion

    from pipeline.shared.mqtt_client import MqttLoop
    from pipeline.shared.radio_topics import KINDS, RadioTopics

    radio = RadioTopics(regions=1)
    filters = [radio.every(topic)] if topic in KINDS else [topic]
    if topic == "advisories":  # those addressed to one vehicle have its topic
        filters.append(radio.vehicle_advisories(vehicle) if vehicle else radio.every_vehicle_advisories())
    got: queue.Queue[tuple[str, bytes]] = queue.Queue()
    client = paho.Client(CallbackAPIVersion.VERSION2, client_id=f"consume-{uuid.uuid4().hex[:8]}",
                         protocol=paho.MQTTv5)  # fmt: skip
    client.on_message = lambda _c, _u, m: got.put((m.topic, bytes(m.payload)))
    host, port = settings.mqtt_address
    try:
        client.connect(host, port)
    except OSError as exc:
        raise StackError(f"no MQTT broker at {host}:{port} ({exc}): start it (`corridor stack up --mqtt`)") from None
    client.subscribe([(f, 1) for f in filters])
    loop = MqttLoop(client)
    loop.start()
    printed = 0
    try:
        while max_records is None or printed < max_records:
            try:
                name, value = got.get(timeout=None if follow else 2.0)
            except queue.Empty:
                break
            try:
                lines = records_of(value)
            except Exception as exc:
                lines = [{"_undecodable": str(exc), "_bytes": len(value), "_head": value[:32].hex()}]
            for line in lines:
                if vehicle is not None and vehicle not in (line.get("vehicle_id"), line.get("target_vehicle")):
                    continue
                sys.stdout.write(json.dumps({"_topic": name, **line}, default=_jsonable) + "\n")
                printed += 1
            sys.stdout.flush()
    except KeyboardInterrupt:
        pass
    finally:
        client.disconnect()
        loop.stop()

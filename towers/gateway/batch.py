"""Each region's vehicle updates, as they come over the radio, batched into TelemetryFrames.

A frame is what the towers read fastest (one Kafka record per region per tick). Its body is the
updates' own Avro encodings one after the other, so the gateway copies each update's bytes as they
arrived, after checking them: a payload that is too large, is not a VehicleTelemetry, does not
decode, was published on another region's topic or under another vehicle's id than its own, or
carries an id, HLC or event time no tower would accept is refused with its reason (the gateway
dead-letters it). A frame's event time is bounded by the gateway's clock, so no sender can move
every region's clock through the heartbeat frames.
Pure: the gateway feeds it messages and takes frames out once a tick.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from pipeline.shared.bounds import event_time_problem, hlc_problem, id_problem
from pipeline.shared.codec import CodecError
from pipeline.shared.messages import CODEC, FRAME, TELEMETRY
from pipeline.shared.radio_topics import RadioTopics

__all__ = ["MAX_PAYLOAD", "FrameBatcher", "Refused", "assemble_frame", "impersonation"]


def _zigzag(n: int) -> bytes:
    z = (n << 1) ^ (n >> 63)
    out = bytearray()
    while z >= 0x80:
        out.append((z & 0x7F) | 0x80)
        z >>= 7
    out.append(z)
    return bytes(out)


def assemble_frame(region: int, seq: int, event_time_ms: int, sent_at_ms: int, bodies: list[bytes]) -> bytes:
    """A TelemetryFrame, in the wire's header, whose updates are `bodies` (VehicleTelemetry encodings
    without their header): the array is one block of len(bodies) items, then its end."""
    head = b"".join(_zigzag(x) for x in (region, seq, event_time_ms, sent_at_ms, len(bodies)))
    return CODEC.header(FRAME) + head + b"".join(bodies) + (b"\x00" if bodies else b"")


@dataclass(frozen=True, slots=True)
class Refused:
    region: int | None  # the region of the topic it came on, when that topic was one of ours
    payload: bytes
    reason: str


@dataclass(slots=True)
class _Pending:
    bodies: list[bytes] = field(default_factory=list)
    event_time_ms: int = 0
    radio_ms: list[int] = field(default_factory=list)  # per update: gateway now - its HLC's wall time


def impersonation(named: str, sender: str | None) -> str:
    """The reason for a message that speaks for another vehicle than the one whose topic it came on
    (the broker lets a vehicle publish under its own id only, so its topic is who sent it)."""
    return f"impersonation: a message of {named[:64]!r} sent under {str(sender)[:64]!r}"


#: a VehicleTelemetry is under 100 bytes; anything this large is not one (and Kafka refuses 1 MB)
MAX_PAYLOAD = 4_096
#: topics whose reading is remembered: each vehicle sends on the same one every tick, and reading it
#: was half the gateway's cost per update; emptied when full, so no sender can grow it without bound
MAX_TOPICS = 50_000


class FrameBatcher:
    def __init__(self, topics: RadioTopics, max_ahead_ms: int = 5_000) -> None:
        self.topics, self.max_ahead_ms = topics, max_ahead_ms
        self._pending: dict[int, _Pending] = {}
        self._seq = 0
        self._event_ms = 0  # the newest event time heard in any region: an empty frame's
        self._parsed: dict[str, tuple[str, int, str | None]] = {}  # topic → (kind, region, sender)

    def add(self, topic: str, payload: bytes, now_ms: int) -> Refused | None:
        """One telemetry message as it came off the radio; a refusal says why."""
        parsed = self._parsed.get(topic)
        if parsed is None:
            try:
                parsed = self.topics.parse(topic)
            except ValueError as exc:
                return Refused(None, payload, f"bad-topic: {topic}: {exc}")
            if len(self._parsed) >= MAX_TOPICS:
                self._parsed.clear()
            self._parsed[topic] = parsed
        kind, region, sender = parsed
        if kind != "telemetry":
            return Refused(region, payload, f"bad-topic: {kind} is not telemetry")
        if len(payload) > MAX_PAYLOAD:
            return Refused(region, payload, f"too-large: {len(payload)} bytes (at most {MAX_PAYLOAD})")
        try:
            writer, body_at = CODEC.split(payload)
            if writer is not TELEMETRY:
                return Refused(region, payload, f"wrong-type: {writer.name} on a telemetry topic")
            update = CODEC.decode(payload, TELEMETRY)
        except CodecError as exc:
            return Refused(region, payload, f"undecodable: {exc}")
        if update["region_id"] != region:
            return Refused(region, payload, f"wrong-region: an update of region {update['region_id']} on {topic}")
        problem = hlc_problem(update["hlc"], now_ms, self.max_ahead_ms)
        if problem is not None:
            return Refused(region, payload, f"bad-hlc: {problem}")
        problem = event_time_problem(update["event_time"], now_ms, self.max_ahead_ms)
        if problem is not None:
            return Refused(region, payload, f"bad-event-time: {problem}")
        problem = id_problem(update["vehicle_id"], "vehicle id")
        if problem is not None:
            return Refused(region, payload, f"bad-id: {problem}")
        if update["vehicle_id"] != sender:
            return Refused(region, payload, impersonation(update["vehicle_id"], sender))
        p = self._pending.setdefault(region, _Pending())
        p.bodies.append(payload[body_at:])
        p.event_time_ms = max(p.event_time_ms, update["event_time"])
        self._event_ms = max(self._event_ms, update["event_time"])
        p.radio_ms.append(now_ms - (update["hlc"] >> 16))  # the HLC's wall time
        return None

    def frames(self, regions: list[int], sent_at_ms: int) -> tuple[dict[int, bytes], list[int]]:
        """A frame for each of `regions` (an empty one where nothing came, once any vehicle was heard:
        the tower's clock still moves on), and every update's radio delay since the last call, in ms."""
        out: dict[int, bytes] = {}
        radio: list[int] = []
        for r in regions:
            p = self._pending.pop(r, None)
            if p is None:
                # A quiet region's frame carries the newest event time heard: the vehicles' clock, never
                # this gateway's own (vehicles replaying the past would see their swarm expired by it).
                # Before any vehicle is heard there is no event time to move on, and no frame.
                if self._event_ms:
                    event_ms = min(self._event_ms, sent_at_ms + self.max_ahead_ms)
                    out[r] = assemble_frame(r, self._seq, event_ms, sent_at_ms, [])
            else:
                out[r] = assemble_frame(r, self._seq, p.event_time_ms, sent_at_ms, p.bodies)
                radio += p.radio_ms
        self._seq += 1
        return out, radio

    def has(self, region: int) -> bool:
        return region in self._pending

    @property
    def pending(self) -> int:
        return sum(len(p.bodies) for p in self._pending.values())

"""Advisories over the radio: one topic per region (vehicles filter) against one topic per vehicle.

Every vehicle holds its own MQTT connection, as on the road. A gateway-like publisher sends
advisories, each addressed to one vehicle (as the towers' rules address them), at QoS 1:

- **region**: vehicle i listens on its region's topic; each advisory reaches every vehicle of the
  region, which keeps its own and drops the rest;
- **vehicle**: vehicle i listens on a topic of its own; each advisory reaches its target only.

Measured for each: copies the broker sent, bytes that reached the vehicles (the cellular downlink),
the broker's CPU time, and the time from publish to the target vehicle hearing it. The vehicles run
in a process of their own, one thread driving every socket through epoll (paho's external loop).
"""

from __future__ import annotations

import json
import selectors
import struct
import subprocess
import sys
import time
import uuid
from typing import Any

import numpy as np
import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from pipeline.shared.radio_topics import RadioTopics
from pipeline.stack.cpu_use import cpu_seconds
from pipeline.stack.process import die_with_parent

__all__ = ["MODES", "measure_downlink"]

MODES = ("region", "vehicle")
_HEAD = struct.Struct(">qi")  # publish time (ns since the epoch), target vehicle number
_SIZE = 140  # a ControlAdvisory single-object encoded is ≈ 120-160 bytes


def _topic(radio: RadioTopics, mode: str, num: int, regions: int) -> str:
    return radio.advisories(num % regions) if mode == "region" else radio.vehicle_advisories(f"veh-{num:07d}")


def _fleet(host: str, port: int, mode: str, vehicles: int, regions: int) -> None:
    """The vehicles' side: connect, subscribe, say ready, count until told to stop, print JSON."""
    radio = RadioTopics(regions)
    sel = selectors.DefaultSelector()
    clients: list[mqtt.Client] = []
    subacks = [0]
    copies, useful, latency_ms = [0], [0], []
    nbytes = [0]

    def on_message(num: int, payload: bytes) -> None:
        copies[0] += 1
        nbytes[0] += len(payload)
        sent_ns, target = _HEAD.unpack_from(payload)
        if target == num:
            useful[0] += 1
            latency_ms.append((time.time_ns() - sent_ns) / 1e6)

    for i in range(vehicles):
        c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"dl-{i}-{uuid.uuid4().hex[:4]}", protocol=mqtt.MQTTv5)
        c.on_message = lambda _c, _u, msg, n=i: on_message(n, msg.payload)
        c.on_subscribe = lambda *_: subacks.__setitem__(0, subacks[0] + 1)
        c.on_connect = lambda cl, *_, n=i: cl.subscribe(_topic(radio, mode, n, regions), qos=1)
        c.connect(host, port, keepalive=60)
        sel.register(c.socket() or -1, selectors.EVENT_READ, c)  # connected: it has its socket
        clients.append(c)
    sel.register(sys.stdin, selectors.EVENT_READ, None)

    def pump(timeout: float) -> bool:
        """One round; False once stdin says stop."""
        for c in clients:
            if c.want_write():
                c.loop_write()
        for key, _ in sel.select(timeout):
            if key.data is None:
                return bool(sys.stdin.readline().strip() != "stop")
            key.data.loop_read()
        return True

    deadline = time.monotonic() + 120
    while subacks[0] < vehicles and time.monotonic() < deadline:
        pump(0.05)
    print("ready", subacks[0], flush=True)
    while pump(0.05):
        for c in clients:
            c.loop_misc()
    quiet_since, last = time.monotonic(), -1
    while time.monotonic() - quiet_since < 1.0 and time.monotonic() < deadline + 60:  # drain what is on its way
        pump(0.05)
        if copies[0] != last:
            quiet_since, last = time.monotonic(), copies[0]
    lat = np.array(latency_ms) if latency_ms else np.array([np.nan])
    print(json.dumps({"copies": copies[0], "useful": useful[0], "bytes": nbytes[0],
                      "latency_p50_ms": round(float(np.percentile(lat, 50)), 1),
                      "latency_p99_ms": round(float(np.percentile(lat, 99)), 1)}), flush=True)  # fmt: skip
    for c in clients:
        c.disconnect()


def measure_downlink(host: str, port: int, mode: str, vehicles: int, advisories: int, rate_per_s: float,
                     regions: int, broker_pid: int | None) -> dict[str, Any]:  # fmt: skip
    """`advisories` addressed to random vehicles, published at `rate_per_s` over `mode`'s topics."""
    argv = [sys.executable, "-m", "pipeline.bench.radio_downlink", host, str(port), mode, str(vehicles), str(regions)]
    fleet = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                             preexec_fn=die_with_parent())  # fmt: skip
    assert fleet.stdin is not None and fleet.stdout is not None
    radio = RadioTopics(regions)
    pub = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"dl-gw-{uuid.uuid4().hex[:6]}", protocol=mqtt.MQTTv5)
    try:
        ready = fleet.stdout.readline().split()
        if ready[:1] != ["ready"] or int(ready[1]) < vehicles:
            raise RuntimeError(f"the vehicles did not all subscribe: {ready}")
        pub.max_inflight_messages_set(1000)
        pub.connect(host, port)
        pub.loop_start()
        rng = np.random.default_rng(7)
        targets = rng.integers(0, vehicles, advisories)
        cpu0, t0 = cpu_seconds(broker_pid), time.monotonic()
        infos = []
        for k, target in enumerate(targets.tolist()):
            time.sleep(max(0.0, t0 + k / rate_per_s - time.monotonic()))
            payload = _HEAD.pack(time.time_ns(), target).ljust(_SIZE, b"\0")
            infos.append(pub.publish(_topic(radio, mode, target, regions), payload, qos=1))
        for info in infos:
            info.wait_for_publish(30)
        fleet.stdin.write("stop\n")  # it stops once no copy has come for a second
        fleet.stdin.flush()
        out = json.loads(fleet.stdout.readline())
        cpu = cpu_seconds(broker_pid) - cpu0
    finally:
        pub.disconnect()
        pub.loop_stop()
        fleet.kill()
        fleet.wait()
    return {"mode": mode, "vehicles": vehicles, "advisories": advisories, "copies": out["copies"],
            "copies_per_advisory": round(out["copies"] / advisories, 1), "heard_by_target": out["useful"],
            "downlink_bytes_per_vehicle": round(out["bytes"] / vehicles),
            "broker_cpu_ms_per_advisory": round(1000 * cpu / advisories, 3),
            "latency_p50_ms": out["latency_p50_ms"], "latency_p99_ms": out["latency_p99_ms"]}  # fmt: skip


if __name__ == "__main__":
    _fleet(sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4]), int(sys.argv[5]))

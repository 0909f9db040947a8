"""A minimal Faust app for the foundation tests: counts keys in a changelog-backed table.

For each input record it adds one to `counts[key]` and sends the new count to the output topic,
so a test can see, after a restart, whether the table came back from its changelog and whether every
record waiting at the restart was counted. `COUNTER_FAUST_FLOW=1`: Faust's own flow control, which
loses some of those (see `towers.flow_control`).
"""

from __future__ import annotations

import os

import faust

from towers.flow_control import SteadyFlowApp

App = faust.App if os.environ.get("COUNTER_FAUST_FLOW") == "1" else SteadyFlowApp
app = App(
    os.environ["COUNTER_APP_ID"],
    broker=f"kafka://{os.environ['COUNTER_BROKER']}",
    store="memory://",
    datadir=os.environ["COUNTER_DATADIR"],
    topic_partitions=int(os.environ.get("COUNTER_PARTITIONS", "2")),
    topic_replication_factor=1,
    table_standby_replicas=0,
    web_enabled=False,
    # A worker that did not leave its group cleanly (killed in its shutdown) holds its partitions
    # until its session times out: Faust's default of 60 s left the test's restart waiting past its
    # 90 s for one partition. The towers use 10 s too.
    broker_session_timeout=10.0,
    broker_heartbeat_interval=3.0,
)
source = app.topic(os.environ["COUNTER_IN"], key_serializer="raw", value_serializer="raw")
sink = app.topic(os.environ["COUNTER_OUT"], key_serializer="raw", value_serializer="raw")
counts = app.Table(
    "counts", default=int, key_type=str, value_type=int, partitions=int(os.environ.get("COUNTER_PARTITIONS", "2"))
)


@app.agent(source)
async def count(stream: faust.StreamT) -> None:
    async for key, _value in stream.items():
        name = key.decode()
        counts[name] += 1
        await sink.send(key=key, value=str(counts[name]).encode())

"""The radio link's MQTT topic names: built and parsed back, anything else refused with a reason."""

from __future__ import annotations

import pytest

from pipeline.shared.errors import ConfigError
from pipeline.shared.radio_topics import KINDS, UPLINK, RadioTopics


def test_every_topic_parses_back_to_its_kind_region_and_sender() -> None:
    t = RadioTopics(regions=9)
    for kind in KINDS:
        for r in range(9):
            sender = "veh-0000007" if kind in UPLINK else None
            assert t.parse(t.of(kind, r, sender or "+")) == (kind, r, sender)
    assert t.telemetry(3, "veh-1") == "corridor/v2/region/3/telemetry/veh-1"
    assert t.every("telemetry", "gw") == "$share/gw/corridor/v2/region/+/telemetry/+"
    assert t.every("advisories") == "corridor/v2/region/+/advisories"


@pytest.mark.parametrize(
    "topic", ["corridor/v2/region/9/telemetry/v", "corridor/v2/region/x/telemetry/v", "corridor/v2/region/1/radar/v",
              "corridor/v1/region/1/telemetry", "corridor/v2/region/1/telemetry", "corridor/v2/region/1/telemetry/v/x",
              "corridor/v2/region/-1/hazards/v", "corridor/v2/region/1/advisories/v", "corridor/v2/region/1/hazards/+",
              "corridor/v2/region/1/hazards/"]
)  # fmt: skip
def test_other_topics_are_refused(topic: str) -> None:
    with pytest.raises(ValueError):
        RadioTopics(regions=9).parse(topic)


@pytest.mark.parametrize("root", ["", "a/+/b", "#", "/corridor", "$SYS"])
def test_a_root_with_wildcards_or_a_leading_slash_is_a_config_error(root: str) -> None:
    with pytest.raises(ConfigError):
        RadioTopics(regions=9, root=root)


def test_a_vehicle_has_an_advisory_topic_of_its_own_that_no_region_topic_matches() -> None:
    t = RadioTopics(regions=9)
    assert t.vehicle_advisories("veh-0000042") == "corridor/v2/vehicle/veh-0000042/advisories"
    with pytest.raises(ValueError):
        t.parse(t.vehicle_advisories("veh-0000042"))


@pytest.mark.parametrize("vid", ["", "veh/1", "veh+", "#", "a\0b", "$share"])
def test_a_vehicle_id_that_cannot_be_a_topic_level_is_refused(vid: str) -> None:
    t = RadioTopics(regions=9)
    with pytest.raises(ValueError):
        t.vehicle_advisories(vid)
    with pytest.raises(ValueError):
        t.telemetry(1, vid)

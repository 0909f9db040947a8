"""The radio link's MQTT topic names: built and parsed back, anything else refused with a reason."""

from __future__ import annotations

import pytest

from pipeline.shared.errors import ConfigError
from pipeline.shared.radio_topics import KINDS, RadioTopics


def test_every_topic_parses_back_to_its_kind_and_region() -> None:
    t = RadioTopics(regions=9)
    for kind in KINDS:
        for r in range(9):
            assert t.parse(t.of(kind, r)) == (kind, r)
    assert t.telemetry(3) == "corridor/v1/region/3/telemetry"
    assert t.every("telemetry", "gw") == "$share/gw/corridor/v1/region/+/telemetry"


@pytest.mark.parametrize(
    "topic", ["corridor/v1/region/9/telemetry", "corridor/v1/region/x/telemetry", "corridor/v1/region/1/radar",
              "corridor/v2/region/1/telemetry", "corridor/v1/region/1/telemetry/extra", "corridor/v1/region/-1/hazards"]
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
    assert t.vehicle_advisories("veh-0000042") == "corridor/v1/vehicle/veh-0000042/advisories"
    with pytest.raises(ValueError):
        t.parse(t.vehicle_advisories("veh-0000042"))


@pytest.mark.parametrize("vid", ["", "veh/1", "veh+", "#", "a\0b"])
def test_a_vehicle_id_that_cannot_be_a_topic_level_is_refused(vid: str) -> None:
    with pytest.raises(ValueError):
        RadioTopics(regions=9).vehicle_advisories(vid)

"""Who may do what: every Kafka ACL and etcd role corridor grants, in one place.

The embedded secure stack applies these grants, the manual's table (docs/security.md) is this list, and the Strimzi
`KafkaUser` manifests are checked against it. Least privilege: each role gets the operations its
clients perform and nothing else; the admin principal is the broker's only super user besides
the broker itself.
"""

from __future__ import annotations

from dataclasses import dataclass

from pipeline.shared.access import Role
from pipeline.shared.radio_access import mqtt_policy_rows
from pipeline.shared.radio_topics import RadioTopics
from pipeline.shared.topics import Topics

__all__ = ["ETCD_GRANTS", "EtcdGrant", "KafkaGrant", "kafka_grants", "policy_table", "towers_prefix"]


@dataclass(frozen=True, slots=True)
class KafkaGrant:
    role: Role
    resource: str  # topic | group
    pattern: str  # literal | prefixed
    name: str
    operations: tuple[str, ...]  # Kafka's AclOperation names
    why: str


@dataclass(frozen=True, slots=True)
class EtcdGrant:
    role: Role
    permission: str  # read | readwrite
    prefix: str
    why: str


def towers_prefix(topics: Topics) -> str:
    """What every towers app id starts with (`towers.config.app_id`): it names their consumer group,
    their tables' changelogs and Faust's own assignor topic."""
    return f"{topics.prefix}-towers"


def kafka_grants(topics: Topics) -> list[KafkaGrant]:
    """The ACLs of one corridor deployment (one topic prefix)."""
    towers = towers_prefix(topics)
    v, t, r, a = Role.VEHICLE, Role.TOWER, Role.READER, Role.ANALYTICS
    w, rd, d = "WRITE", "READ", "DESCRIBE"
    return [
        KafkaGrant(v, "topic", "literal", topics.telemetry, (w, d), "send telemetry"),
        KafkaGrant(v, "topic", "literal", topics.hazards, (w, d), "report hazards"),
        KafkaGrant(v, "topic", "literal", topics.advisories, (rd, d), "receive advisories"),
        KafkaGrant(v, "group", "prefixed", "vehicles-", (rd,), "the fleet's advisory listener"),
        KafkaGrant(v, "group", "prefixed", "gateway-", (rd,), "an MQTT gateway's advisory consumer"),
        KafkaGrant(v, "topic", "literal", topics.dead_letter, (w, d), "an MQTT gateway's refusals, with reasons"),
        KafkaGrant(t, "topic", "literal", topics.telemetry, (rd, d), "consume telemetry"),
        KafkaGrant(t, "topic", "literal", topics.hazards, (rd, d), "consume hazard reports"),
        KafkaGrant(t, "topic", "literal", topics.tower_sync, (rd, w, d), "lazy sync with neighbour towers"),
        KafkaGrant(t, "topic", "literal", topics.advisories, (w, d), "publish advisories"),
        KafkaGrant(t, "topic", "literal", topics.dead_letter, (w, d), "dead-letter bad records"),
        KafkaGrant(t, "topic", "prefixed", towers, (rd, w, d, "CREATE"), "their tables' changelogs"),
        KafkaGrant(t, "group", "prefixed", towers, (rd, d), "their consumer groups"),
        KafkaGrant(r, "topic", "prefixed", f"{topics.prefix}.", (rd, d), "read every corridor topic"),
        KafkaGrant(r, "group", "prefixed", "consume-", (rd,), "`corridor consume`"),
        KafkaGrant(r, "group", "prefixed", "corridor-dashboard-", (rd,), "the dashboard's feed"),
        KafkaGrant(a, "topic", "prefixed", f"{topics.prefix}.", (rd, d), "read every corridor topic"),
        KafkaGrant(a, "topic", "literal", topics.corridor_stats, (w, d), "publish the corridor-wide figures"),
        KafkaGrant(a, "group", "prefixed", "spark-kafka-source", (rd,), "Spark's Kafka source"),
    ]


#: etcd roles (the role and its user share the role's name; the user is a client certificate's
#: common name). Vehicles have no etcd access at all; the admin is etcd's `root`.
ETCD_GRANTS: tuple[EtcdGrant, ...] = (
    EtcdGrant(Role.TOWER, "readwrite", "/corridor/", "registry, region snapshots, global view, alerts"),
    EtcdGrant(Role.READER, "read", "/corridor/", "`corridor status`, the dashboard"),
)


def _star(grant: KafkaGrant) -> str:
    return "*" if grant.pattern == "prefixed" else ""


def policy_table(topics: Topics) -> str:
    """The grants as the manual's Markdown table (a test keeps docs/security.md's copy equal); the
    radio link's MQTT identities are its last rows, their broker's ACLs in the Kafka column."""
    rows = ["| principal | Kafka (ACLs), or the MQTT broker's for an MQTT identity | etcd |", "|---|---|---|"]
    etcd = {g.role: f"{g.permission} `{g.prefix}`" for g in ETCD_GRANTS}
    rows.append("| `admin` | super user: declares topics and ACLs, drives scenarios | etcd's `root` |")
    for role in (Role.TOWER, Role.VEHICLE, Role.READER, Role.ANALYTICS):
        grants = [g for g in kafka_grants(topics) if g.role == role]
        cells = [f"{'/'.join(op.lower() for op in g.operations)} {g.resource} `{g.name}{_star(g)}`" for g in grants]
        rows.append(f"| `{role.value}` | {'; '.join(cells)} | {etcd.get(role, 'none')} |")
    rows += mqtt_policy_rows(RadioTopics(topics.regions))  # the radio link's broker, in the Kafka column's place
    return "\n".join(rows) + "\n"

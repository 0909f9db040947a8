"""A cluster of three Kafka nodes and three etcd members: its ports, how every client finds all of
them, what each node is told, and how a later command knows the stack here is a cluster."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.ports import _ephemeral_range, cluster_ports, is_free
from pipeline.shared.access import EtcdAccess, Role
from pipeline.shared.config import LAYOUT_FILE, Ports, Settings, read_layout, write_layout
from pipeline.shared.errors import ConfigError
from pipeline.stack.etcd import EtcdServer
from pipeline.stack.kafka import KafkaBroker, _server_properties

CLUSTER = Ports(kafka=20000, kafka_controller=20001, etcd=20002, etcd_peer=20003, mqtt=20004, registry=20005,
                brokers=3, etcd_members=3)  # fmt: skip


def _props(text: str) -> dict[str, str]:
    return dict(line.split("=", 1) for line in text.splitlines() if line)


def test_node_i_listens_on_node_0s_ports_plus_a_stride() -> None:
    assert CLUSTER.kafka_nodes == [(20000, 20001), (20100, 20101), (20200, 20201)]
    assert CLUSTER.etcd_nodes == [(20002, 20003), (20102, 20103), (20202, 20203)]
    assert Ports().kafka_nodes == [(9092, 9093)] and Ports().etcd_nodes == [(2379, 2380)]


@pytest.mark.parametrize(("changes", "needle"), [
    ({"brokers": 2}, "Kafka brokers: 2 is not one of 1, 3, 5"),
    ({"etcd_members": 4}, "etcd members: 4 is not one of 1, 3, 5"),
    ({"brokers": 3, "etcd": 9192}, "must differ"),  # etcd's port is Kafka node 2's
    ({"brokers": 5, "kafka": 65200}, "out of range"),
])  # fmt: skip
def test_a_cluster_that_cannot_be_is_refused_in_one_line(changes: dict[str, int], needle: str) -> None:
    with pytest.raises(ConfigError, match=needle) as err:
        Ports(**changes)
    assert "\n" not in str(err.value)


def test_every_client_is_given_every_node() -> None:
    s = Settings(ports=CLUSTER, topic_replication=3)
    assert s.bootstrap_servers == "127.0.0.1:20000,127.0.0.1:20100,127.0.0.1:20200"
    assert s.etcd_servers == "127.0.0.1:20002,127.0.0.1:20102,127.0.0.1:20202"
    assert s.topics(9).replication == 3


def test_an_etcd_client_is_given_every_member_so_grpc_moves_on_when_one_stops() -> None:
    access = Settings(ports=CLUSTER).etcd(Role.TOWER)
    assert access.client_kwargs() == {"host": "ipv4:127.0.0.1:20002,127.0.0.1:20102,127.0.0.1", "port": 20202}
    assert access.url == "http://127.0.0.1:20002"  # its HTTP endpoints: the first member's
    # names gRPC's ipv4 list cannot hold: the first endpoint, as before
    named = EtcdAccess("etcd-0.etcd", 2379, others=(("etcd-1.etcd", 2379),))
    assert named.client_kwargs() == {"host": "etcd-0.etcd", "port": 2379}
    assert EtcdAccess("127.0.0.1", 2379).client_kwargs() == {"host": "127.0.0.1", "port": 2379}


def test_over_tls_the_members_certificate_is_checked_against_their_address_not_the_address_list() -> None:
    ca = Path("ca.pem")
    access = EtcdAccess("127.0.0.1", 20002, ca, Path("c.pem"), Path("k.pem"), (("127.0.0.1", 20102),))
    kwargs = access.client_kwargs()
    assert kwargs["host"] == "ipv4:127.0.0.1:20002,127.0.0.1" and kwargs["port"] == 20102
    assert kwargs["grpc_options"] == [("grpc.ssl_target_name_override", "127.0.0.1")]
    assert kwargs["ca_cert"] == "ca.pem" and kwargs["cert_cert"] == "c.pem" and kwargs["cert_key"] == "k.pem"


def test_each_kafka_node_is_a_voter_of_one_quorum_with_three_replicas_two_in_sync(tmp_path: Path) -> None:
    s = Settings(state_dir=tmp_path, ports=CLUSTER, topic_replication=3)
    props = _props(_server_properties(s, tmp_path / "data", index=1))
    assert props["node.id"] == "2"
    assert props["controller.quorum.voters"] == "1@127.0.0.1:20001,2@127.0.0.1:20101,3@127.0.0.1:20201"
    assert props["listeners"] == "PLAINTEXT://127.0.0.1:20100,CONTROLLER://127.0.0.1:20101"
    assert props["advertised.listeners"] == "PLAINTEXT://127.0.0.1:20100"
    assert props["offsets.topic.replication.factor"] == props["default.replication.factor"] == "3"
    assert props["min.insync.replicas"] == props["transaction.state.log.min.isr"] == "2"
    assert props["unclean.leader.election.enable"] == "false"
    single = _props(_server_properties(Settings(state_dir=tmp_path), tmp_path / "data"))
    assert single["controller.quorum.voters"] == "1@127.0.0.1:9093"
    assert single["offsets.topic.replication.factor"] == single["min.insync.replicas"] == "1"


def test_nodes_keep_their_own_folders_and_names(tmp_path: Path) -> None:
    s = Settings(state_dir=tmp_path, ports=CLUSTER)
    assert [KafkaBroker(s, i).home.name for i in range(3)] == ["kafka", "kafka-2", "kafka-3"]
    assert [EtcdServer(s, i).member for i in range(3)] == ["corridor-1", "corridor-2", "corridor-3"]
    assert EtcdServer(Settings(state_dir=tmp_path)).member == "corridor"  # a single member's name, as before


def test_a_stack_made_as_a_cluster_stays_one_for_later_commands(tmp_path: Path) -> None:
    env = {"CORRIDOR_STATE_DIR": str(tmp_path)}
    assert Settings.from_env(env).ports.brokers == 1 and Settings.from_env(env).topic_replication == 1
    write_layout(tmp_path, 3, 3)
    s = Settings.from_env(env)
    assert (s.ports.brokers, s.ports.etcd_members, s.topic_replication) == (3, 3, 3)
    assert len(s.bootstrap_servers.split(",")) == 3
    assert Settings.from_env({**env, "CORRIDOR_TOPIC_REPLICATION": "2"}).topic_replication == 2
    write_layout(tmp_path, 1, 1)  # purged
    assert not (tmp_path / LAYOUT_FILE).exists() and read_layout(tmp_path) == (1, 1)


def test_a_layout_file_not_of_corridors_making_is_an_error(tmp_path: Path) -> None:
    (tmp_path / LAYOUT_FILE).write_text("{brokers: three")
    with pytest.raises(ConfigError, match="is not a cluster layout") as err:
        Settings.from_env({"CORRIDOR_STATE_DIR": str(tmp_path)})
    assert "\n" not in str(err.value)
    (tmp_path / LAYOUT_FILE).write_text('{"brokers": 4, "etcd_members": 3}')
    with pytest.raises(ConfigError, match="Kafka brokers: 4 is not one of"):
        Settings.from_env({"CORRIDOR_STATE_DIR": str(tmp_path)})


def test_as_cluster_gives_three_replicas_unless_more_than_one_was_asked() -> None:
    s = Settings().as_cluster(3, 3)
    assert (s.ports.brokers, s.ports.etcd_members, s.topic_replication) == (3, 3, 3)
    assert Settings(topic_replication=2).as_cluster(3, None).topic_replication == 2
    assert Settings().as_cluster(None, None) == Settings()


def test_cluster_ports_are_free_for_every_node_and_outside_the_ephemeral_range() -> None:
    lo, _hi = _ephemeral_range()
    for _ in range(200):  # node 0's near the range's edge put node 2's inside it, now and then
        ports = cluster_ports(3, 3)
        every = [p for pair in ports.kafka_nodes + ports.etcd_nodes for p in pair]
        assert all(is_free(p) for p in every)
        assert all(p < lo for p in every), every


def test_the_status_of_an_etcd_of_ones_own_is_judged_by_its_answer_not_by_local_processes(tmp_path: Path) -> None:
    """An external etcd (a Job's in Kubernetes) has no process here to count among the members."""
    from pipeline.ports import free_ports
    from pipeline.stack import Stack

    nowhere = f"127.0.0.1:{free_ports(1)[0]}"
    status = Stack(Settings(state_dir=tmp_path, etcd_endpoints=(nowhere,)))._etcd_status()
    assert (status.name, status.state, status.address) == ("etcd", "unreachable", nowhere)

"""The tower edge-clouds: Faust workers that merge their regions' telemetry into CRDT tables and advise
vehicles; they meet the vehicles only through Kafka (and MQTT, through the gateway)."""

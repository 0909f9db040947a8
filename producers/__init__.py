"""Vehicle producers: the fleet simulation, its telemetry encoder, and the Kafka edges."""

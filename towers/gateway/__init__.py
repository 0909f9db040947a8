"""The tower gateway: the radio side of a tower. Vehicles publish over MQTT; the gateway batches each
region's updates into the TelemetryFrames the towers read from Kafka, and carries the towers'
advisories back to the vehicles' MQTT topics."""

"""The live web page of the corridor (`corridor dashboard`): reads Kafka, etcd and the workers' pages."""

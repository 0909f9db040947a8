"""The local stack corridor runs on: a real Kafka broker and a real etcd, or an external cluster."""

from pipeline.stack.stack import ServiceStatus, Stack, StackStatus

__all__ = ["ServiceStatus", "Stack", "StackStatus"]

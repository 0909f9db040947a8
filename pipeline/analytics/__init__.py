"""The cloud tier: corridor-wide analytics on Spark Structured Streaming (optional extra `spark`)."""

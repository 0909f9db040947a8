"""The layer every other part stands on: settings, errors, the corridor model, the CRDTs, the Avro
codec, message schemas and topic names. Pure (no I/O beyond reading the packaged data files), and it
imports nothing from the producers, the towers or the tools (an import-linter contract says so)."""

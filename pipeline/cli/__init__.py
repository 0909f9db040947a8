"""The `corridor` command: thin subcommands over library functions."""

from pipeline.cli.main import app, main

__all__ = ["app", "main"]

"""Fault drills: run traffic, inject one fault, and account exactly for what the towers kept."""

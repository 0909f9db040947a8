"""The Bloomington–Indianapolis route simulation: scenarios, the run, the live view, the report."""

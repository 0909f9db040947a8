"""Prometheus beside a run: the server, its scrape configuration, and the questions a run asks it."""

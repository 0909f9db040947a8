"""Container images of corridor's parts and the engine (Podman or Docker) that builds and runs them."""

"""The container image and compose.yaml, with real containers (podman, docker-compose)."""

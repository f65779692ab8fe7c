"""Deployment settings shared by ``docker-compose.yaml`` and ``make cluster`` (see ``settings``)."""

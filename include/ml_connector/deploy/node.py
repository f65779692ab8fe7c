"""``[core] hostname_callable`` for several Airflow workers on one machine (``make cluster``).

Airflow records the worker's host name on each task instance (``hostname``) from this callable. Containers each have
their own host name; processes on one machine do not, so the cluster gives every worker ``MLC_NODE_NAME`` and this
returns it (the machine's name when unset).
"""

from __future__ import annotations

import os
import socket


def node_name() -> str:
    return os.environ.get("MLC_NODE_NAME") or socket.getfqdn()

"""The asset watcher's trigger: stored webhook notifications of one tenant and division become asset events.

``ExactNotificationTrigger`` is a ``BaseEventTrigger`` that runs in Airflow's triggerer (not a daemon of ours). It
looks in the connector database every ``poll_interval`` seconds for notifications the receiver stored and no event
was made for yet; when there are some, it yields **one** ``TriggerEvent`` for all of them (Airflow records it as an
event of the watched asset ``exact://<tenant>/<division>/purchase-orders``) and then marks them emitted.

Marked after the yield: a triggerer that dies in between sends the same notifications again (one more PO-push run,
which finds nothing new through the cursor): at-least-once, never lost. A database that cannot be read is logged
and tried again at the next poll; the scheduled run still recovers every change by the cursor.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from typing import Any

from airflow.triggers.base import BaseEventTrigger, TriggerEvent

log = logging.getLogger(__name__)

DEFAULT_POLL_INTERVAL = 2.0


class ExactNotificationTrigger(BaseEventTrigger):
    def __init__(self, tenant: str, division: int, poll_interval: float = DEFAULT_POLL_INTERVAL) -> None:
        super().__init__()
        self.tenant = tenant
        self.division = int(division)
        self.poll_interval = float(poll_interval)

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {"tenant": self.tenant, "division": self.division, "poll_interval": self.poll_interval},
        )

    def _take(self, engine: Any) -> tuple[list[int], list[str]]:
        from ml_connector.webhooks import store

        rows = store.pending(engine, self.tenant, self.division)
        return [r.id for r in rows], [f"{r.action or '?'} {r.entity_key or '?'}" for r in rows]

    async def run(self) -> AsyncIterator[TriggerEvent]:
        from ml_connector.store.db import get_engine
        from ml_connector.webhooks import store

        engine = None
        while True:
            try:
                # resolved here, on the triggerer's loop (the connection may come through Airflow's comms)
                engine = engine or get_engine()
                ids, what = await asyncio.to_thread(self._take, engine)
            except Exception as exc:  # the next poll tries again; the schedule is the safety net
                log.warning("webhook notifications of %s/%s unreadable: %s", self.tenant, self.division, exc)
                ids, what = [], []
            if ids:
                yield TriggerEvent(
                    {
                        "tenant": self.tenant,
                        "division": self.division,
                        "notifications": len(ids),
                        "changes": what[:20],
                        "last_id": ids[-1],
                    }
                )
                try:
                    await asyncio.to_thread(store.mark_emitted, engine, ids)
                except Exception as exc:
                    log.warning("webhook notifications of %s/%s not marked: %s", self.tenant, self.division, exc)
            await asyncio.sleep(self.poll_interval)

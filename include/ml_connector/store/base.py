"""The declarative base every connector table is declared on (``store.models``, ``store.webhook_tables``)."""

from __future__ import annotations

from sqlalchemy.orm import DeclarativeBase


class Base(DeclarativeBase):
    pass

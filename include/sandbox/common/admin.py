"""The ``/_admin`` routes every sandbox shares.

``make_admin_router`` takes the sandbox's clock, fault injector and call log plus callables for the
vendor-specific parts (reset, seed, state, settings) and returns an ``APIRouter`` to include in the app:

``POST /_admin/reset``            empty state + default seed (body optional: passed to ``reset`` as params)
``POST /_admin/seed``             generator params, e.g. ``{"purchase_orders": 100000, "suppliers": 500, "seed": 42}``
``GET  /_admin/state``            JSON view of the store
``GET  /_admin/clock``            ``{"now": iso, "time": epoch, "sim_epoch", "real_epoch", "speed"}``
``POST /_admin/clock``            ``{"advance": s}`` | ``{"set": iso-or-epoch}`` | ``{"speed": x}`` (combinable;
                                  applied in the order set, advance, speed)
``GET|POST|DELETE /_admin/faults``  list / add one rule or a list of rules / clear
``GET|DELETE /_admin/calls``      call counts and log / reset
``GET|POST /_admin/settings``     read / patch the vendor's switchable behaviours
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, Body, HTTPException

from sandbox.common.calls import CallLog
from sandbox.common.clock import Clock
from sandbox.common.faults import FaultInjector, FaultRule


def clock_view(clock: Clock) -> dict[str, Any]:
    return {"now": clock.now().isoformat(), "time": clock.time(), **clock.anchors()}


def make_admin_router(
    *,
    clock: Clock,
    faults: FaultInjector,
    calls: CallLog,
    reset: Callable[[dict[str, Any]], Any],
    seed: Callable[[dict[str, Any]], Any],
    state: Callable[[], Any],
    get_settings: Callable[[], dict[str, Any]],
    patch_settings: Callable[[dict[str, Any]], dict[str, Any]],
    prefix: str = "/_admin",
) -> APIRouter:
    """Build the shared admin router. ``patch_settings`` raises ``ValueError`` for an unknown/invalid knob."""
    router = APIRouter(prefix=prefix, tags=["admin"])

    @router.post("/reset")
    def _reset(params: dict[str, Any] | None = Body(default=None)) -> Any:
        result = reset(params or {})
        return result if result is not None else {"ok": True}

    @router.post("/seed")
    def _seed(params: dict[str, Any] | None = Body(default=None)) -> Any:
        try:
            result = seed(params or {})
        except ValueError as exc:
            raise HTTPException(400, str(exc)) from exc
        return result if result is not None else {"ok": True}

    @router.get("/state")
    def _state() -> Any:
        return state()

    @router.get("/clock")
    def _clock_get() -> dict[str, Any]:
        return clock_view(clock)

    @router.post("/clock")
    def _clock_post(body: dict[str, Any] = Body(...)) -> dict[str, Any]:
        try:
            if "set" in body:
                clock.set(body["set"])
            if "advance" in body:
                clock.advance(float(body["advance"]))
            if "speed" in body:
                clock.speed = float(body["speed"])
        except (TypeError, ValueError) as exc:
            raise HTTPException(400, str(exc)) from exc
        return clock_view(clock)

    @router.get("/faults")
    def _faults_get() -> list[dict[str, Any]]:
        return [r.model_dump() for r in faults.list()]

    @router.post("/faults")
    def _faults_post(body: dict[str, Any] | list[dict[str, Any]] = Body(...)) -> list[dict[str, Any]]:
        items = body if isinstance(body, list) else [body]
        try:
            rules = [FaultRule.model_validate(item) for item in items]
        except ValueError as exc:
            raise HTTPException(422, str(exc)) from exc
        for rule in rules:
            faults.add(rule)
        return [r.model_dump() for r in rules]

    @router.delete("/faults")
    def _faults_delete() -> dict[str, Any]:
        faults.clear()
        return {"ok": True}

    @router.get("/calls")
    def _calls_get() -> dict[str, Any]:
        return calls.snapshot()

    @router.delete("/calls")
    def _calls_delete() -> dict[str, Any]:
        calls.reset()
        return {"ok": True}

    @router.get("/settings")
    def _settings_get() -> dict[str, Any]:
        return get_settings()

    @router.post("/settings")
    def _settings_post(body: dict[str, Any] = Body(...)) -> dict[str, Any]:
        try:
            return patch_settings(body)
        except ValueError as exc:
            raise HTTPException(400, str(exc)) from exc

    return router

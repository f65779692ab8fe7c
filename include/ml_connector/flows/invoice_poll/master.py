"""Exact master data the invoice poll checks entries against, read once per run and division.

GL accounts (``IsBlocked``), cost centres (``Active``), VAT codes (``IsBlocked``) and journals (``Type`` 22 =
purchase journal). Each collection is paged (``__next``); every page counts against the division's rate budget,
so the result travels to the post task (small: codes and GUIDs) instead of being read twice.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

PURCHASE_JOURNAL_TYPE = 22


@dataclass(frozen=True)
class GL:
    id: str
    code: str
    blocked: bool
    description: str | None = None


@dataclass
class MasterData:
    division: int
    gl: dict[str, GL] = field(default_factory=dict)  # by stripped code
    cost_centers: dict[str, tuple[str, bool]] = field(default_factory=dict)  # stripped code -> (Exact code, active)
    vat_codes: dict[str, tuple[str, bool]] = field(default_factory=dict)  # stripped code -> (Exact code, blocked)
    journals: dict[str, int | None] = field(default_factory=dict)  # stripped code -> type

    @classmethod
    def load(cls, hook: Any, division: int) -> MasterData:
        """Read the four collections of ``division`` through an ``ExactOnlineHook``."""
        data = cls(division=division)
        for row in hook.iter_collection(division, "financial/GLAccounts", select="ID,Code,Description,IsBlocked"):
            code = str(row.get("Code") or "").strip()
            if code:
                data.gl[code] = GL(
                    id=str(row["ID"]),
                    code=code,
                    blocked=bool(row.get("IsBlocked")),
                    description=row.get("Description"),
                )
        for row in hook.iter_collection(division, "hrm/Costcenters", select="ID,Code,Active"):
            code = str(row.get("Code") or "")
            if code.strip():
                data.cost_centers[code.strip()] = (code, bool(row.get("Active", True)))
        for row in hook.iter_collection(division, "vat/VATCodes", select="ID,Code,IsBlocked"):
            code = str(row.get("Code") or "")
            if code.strip():
                data.vat_codes[code.strip()] = (code, bool(row.get("IsBlocked")))
        for row in hook.iter_collection(division, "financial/Journals", select="ID,Code,Type"):
            code = str(row.get("Code") or "").strip()
            if code:
                raw_type = row.get("Type")
                data.journals[code] = int(raw_type) if raw_type is not None else None
        return data

    # -- XCom ----------------------------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return {
            "division": self.division,
            "gl": {c: [g.id, g.blocked, g.description] for c, g in self.gl.items()},
            "cost_centers": {c: list(v) for c, v in self.cost_centers.items()},
            "vat_codes": {c: list(v) for c, v in self.vat_codes.items()},
            "journals": dict(self.journals),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> MasterData:
        return cls(
            division=int(data["division"]),
            gl={c: GL(id=v[0], code=c, blocked=bool(v[1]), description=v[2]) for c, v in data["gl"].items()},
            cost_centers={c: (v[0], bool(v[1])) for c, v in data["cost_centers"].items()},
            vat_codes={c: (v[0], bool(v[1])) for c, v in data["vat_codes"].items()},
            journals={c: (int(t) if t is not None else None) for c, t in data["journals"].items()},
        )

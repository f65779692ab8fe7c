"""Load the tenant file and explain every problem with file, line, tenant and field."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from ml_connector.config.tenant import TenantConfig
from ml_connector.errors import ConfigError
from ml_connector.settings import config_path


def _line_of(node: yaml.Node | None, loc: tuple[Any, ...]) -> int | None:
    """1-based line of the YAML node at ``loc`` (or of its nearest existing parent)."""
    line = node.start_mark.line + 1 if node is not None else None
    for key in loc:
        if isinstance(node, yaml.MappingNode):
            match = next(((k, v) for k, v in node.value if k.value == str(key)), None)
            if match is None:
                return line
            # point at the key's line: for a nested mapping the value starts on the next one
            line, node = match[0].start_mark.line + 1, match[1]
        elif isinstance(node, yaml.SequenceNode) and isinstance(key, int) and key < len(node.value):
            node = node.value[key]
            line = node.start_mark.line + 1
        else:
            return line
    return line


def _field(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(tenant)"


def load_tenants(path: Path | str | None = None) -> dict[str, TenantConfig]:
    """Parse and validate the tenant file. Raises ConfigError listing every problem found."""
    path = Path(path) if path else config_path()
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the tenant file ({exc.strerror})") from None
    try:
        root = yaml.compose(text)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark else str(path)
        raise ConfigError(f"{where}: not valid YAML: {getattr(exc, 'problem', exc)}") from None

    if not isinstance(data, dict) or not isinstance(data.get("tenants"), dict) or not data["tenants"]:
        raise ConfigError(f"{path}:1: expected a top-level 'tenants:' mapping with at least one tenant")
    unknown = set(data) - {"tenants"}
    problems: list[str] = [f"{path}:{_line_of(root, (k,))}: unknown top-level key {k!r}" for k in sorted(unknown)]

    tenants: dict[str, TenantConfig] = {}
    for name, raw in data["tenants"].items():
        if not isinstance(raw, dict):
            problems.append(f"{path}:{_line_of(root, ('tenants', name))}: tenant {name!r}: expected a mapping")
            continue
        try:
            tenants[str(name)] = TenantConfig.model_validate({"name": str(name), **raw})
        except ValidationError as exc:
            for err in exc.errors():
                loc = tuple(p for p in err["loc"] if p != "name") if err["loc"] != ("name",) else ()
                line = _line_of(root, ("tenants", name, *loc))
                msg = err["msg"].removeprefix("Value error, ")
                what = "tenant name" if err["loc"] == ("name",) else _field(loc)
                problems.append(f"{path}:{line}: tenant {name!r}: {what}: {msg}")
    if problems:
        raise ConfigError(problems)
    return tenants

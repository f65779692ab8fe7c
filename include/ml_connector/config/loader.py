"""Load the tenant file and explain every problem with file, line, tenant and field.

Everything is reported in one pass: duplicate keys (YAML would silently keep the last one), field errors and the
cross-field checks of each tenant (``config.cross``), even when some fields are invalid.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from ml_connector.config.cross import cross_field_problems
from ml_connector.config.tenant import TenantConfig
from ml_connector.errors import ConfigError
from ml_connector.settings import config_path


def _key_text(node: yaml.Node) -> str:
    return str(node.value) if isinstance(node, yaml.ScalarNode) else f"<{node.tag}>"


def _line_of(node: yaml.Node | None, loc: tuple[Any, ...]) -> int | None:
    """1-based line of the YAML node at ``loc`` (or of its nearest existing parent)."""
    line = node.start_mark.line + 1 if node is not None else None
    for key in loc:
        if isinstance(node, yaml.MappingNode):
            # the last of duplicate keys: the one YAML keeps (a YAML boolean key is spelt true/false)
            text = str(key).lower() if isinstance(key, bool) else str(key)
            matches = [(k, v) for k, v in node.value if isinstance(k, yaml.ScalarNode) and k.value == text]
            if not matches:
                return line
            # point at the key's line: for a nested mapping the value starts on the next one
            line, node = matches[-1][0].start_mark.line + 1, matches[-1][1]
        elif isinstance(node, yaml.SequenceNode) and isinstance(key, int) and key < len(node.value):
            node = node.value[key]
            line = node.start_mark.line + 1
        else:
            return line
    return line


def _field(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        if part == "[key]":  # pydantic's marker for a dict key that failed validation
            out += " (key)"
        elif isinstance(part, bool):
            out += f".{str(part).lower()}"
        elif isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out or "(tenant)"


def duplicate_keys(node: yaml.Node | None, path: Path) -> list[str]:
    """One problem per key that appears twice in a mapping, naming both lines (YAML keeps the last silently)."""
    problems: list[tuple[int, str]] = []
    stack = [node] if node is not None else []
    seen: set[int] = set()  # an alias makes the same node appear again (a recursive anchor: forever)
    while stack:
        current = stack.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        if isinstance(current, yaml.MappingNode):
            first: dict[str, int] = {}
            for key, value in current.value:
                text, line = _key_text(key), key.start_mark.line + 1
                if text in first:
                    problems.append(
                        (
                            line,
                            f"{path}:{line}: duplicate key {text!r} (also on line {first[text]}): YAML would keep "
                            "only this one; remove one of them",
                        )
                    )
                else:
                    first[text] = line
                stack.append(value)
        elif isinstance(current, yaml.SequenceNode):
            stack.extend(current.value)
    return [problem for _, problem in sorted(problems)]


def load_tenants(path: Path | str | None = None) -> dict[str, TenantConfig]:
    """Parse and validate the tenant file. Raises ConfigError listing every problem found."""
    path = Path(path) if path else config_path()
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the tenant file ({exc.strerror})") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text (byte {exc.start}): save the file as UTF-8") from None
    try:
        root = yaml.compose(text)
        data = yaml.safe_load(text)
    except yaml.reader.ReaderError as exc:  # a character YAML does not allow (control characters, …)
        line = text.count("\n", 0, exc.position) + 1
        raise ConfigError(
            f"{path}:{line}: not valid YAML: character {chr(exc.character)!r} (#x{exc.character:04x}) is not allowed"
            if isinstance(exc.character, int)
            else f"{path}:{line}: not valid YAML: {exc.reason}"
        ) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
        line = mark.line + 1 if mark else 1
        raise ConfigError(f"{path}:{line}: not valid YAML: {getattr(exc, 'problem', None) or exc}") from None

    problems: list[str] = duplicate_keys(root, path)
    if not isinstance(data, dict) or not isinstance(data.get("tenants"), dict) or not data["tenants"]:
        raise ConfigError([*problems, f"{path}:1: expected a top-level 'tenants:' mapping with at least one tenant"])
    unknown = set(data) - {"tenants"}
    problems += [f"{path}:{_line_of(root, (k,))}: unknown top-level key {k!r}" for k in sorted(unknown, key=str)]

    tenants: dict[str, TenantConfig] = {}
    for name, raw in data["tenants"].items():
        if not isinstance(raw, dict):
            problems.append(f"{path}:{_line_of(root, ('tenants', name))}: tenant {name!r}: expected a mapping")
            continue
        found: list[str] = []
        try:
            tenants[str(name)] = TenantConfig.model_validate({"name": str(name), **raw})
        except ValidationError as exc:
            for err in exc.errors():
                loc = tuple(p for p in err["loc"] if p != "name") if err["loc"] != ("name",) else ()
                line = _line_of(root, ("tenants", name, *loc))
                msg = err["msg"].removeprefix("Value error, ")
                what = "tenant name" if err["loc"] == ("name",) else _field(loc)
                found.append(f"{path}:{line}: tenant {name!r}: {what}: {msg}")
            # Cross-field checks do not run inside the model while a field is invalid: run them on the raw data.
            for loc, msg in cross_field_problems(raw):
                line = _line_of(root, ("tenants", name, *loc))
                problem = f"{path}:{line}: tenant {name!r}: {_field(loc)}: {msg}"
                if problem not in found:
                    found.append(problem)
        problems += found
    if problems:
        raise ConfigError(problems)
    return tenants

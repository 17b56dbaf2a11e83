"""A small TOML writer for the config's shapes (the standard library reads TOML, not writes it).

Top-level tables become ``[name]`` sections, lists of tables ``[[name]]`` arrays, and anything
deeper an inline table; ``None`` is left out (TOML has no null). Enough for ``superfed config
export``; ``tomllib`` reading the output back is the test."""

from __future__ import annotations

import json
import math
import re
from typing import Any

_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")


def key(k: str) -> str:
    return k if _BARE_KEY.fullmatch(k) else json.dumps(k, ensure_ascii=False)


def value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        if math.isnan(v):
            return "nan"
        if math.isinf(v):
            return "inf" if v > 0 else "-inf"
        return repr(v)
    if isinstance(v, str):
        return json.dumps(v, ensure_ascii=False)  # JSON's string escapes are TOML's basic-string escapes
    if isinstance(v, list | tuple):
        return "[" + ", ".join(value(x) for x in v if x is not None) + "]"
    if isinstance(v, dict):
        items = [f"{key(k)} = {value(x)}" for k, x in v.items() if x is not None]
        return "{ " + ", ".join(items) + " }" if items else "{}"
    raise TypeError(f"cannot write {type(v).__name__} as TOML")


def _is_table_list(v: Any) -> bool:
    return isinstance(v, list) and bool(v) and all(isinstance(x, dict) for x in v)


def dumps(data: dict[str, Any], header: str = "") -> str:
    lines = [f"# {line}" for line in header.splitlines()]
    for k, v in data.items():  # plain keys first: after a [section] they would belong to it
        if v is None or isinstance(v, dict) or _is_table_list(v):
            continue
        lines.append(f"{key(k)} = {value(v)}")
    for k, v in data.items():
        if isinstance(v, dict):
            lines += ["", f"[{key(k)}]"]
            lines += [f"{key(kk)} = {value(vv)}" for kk, vv in v.items() if vv is not None]
    for k, v in data.items():
        if _is_table_list(v):
            for item in v:
                lines += ["", f"[[{key(k)}]]"]
                lines += [f"{key(kk)} = {value(vv)}" for kk, vv in item.items() if vv is not None]
    return "\n".join(lines) + "\n"

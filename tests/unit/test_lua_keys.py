"""Every Lua script the broker runs names the keys it touches in KEYS: a managed Redis or a
cluster-aware proxy routes a script by its KEYS and may refuse (or misroute) one that builds a
key from a prefix or reads one out of a value. Each ``redis.call`` / ``redis.pcall`` of every
script must take its key from ``KEYS[...]`` or from a name bound only to a KEYS element."""

from __future__ import annotations

import importlib
import pkgutil
import re
from pathlib import Path

import pytest

import broker

ROOT = Path(broker.__file__).parent
NO_KEY = {"TIME", "PING", "INFO", "ECHO"}  # commands that take no key
ALL_KEYS = {"DEL", "UNLINK", "EXISTS", "MGET", "TOUCH", "SUNION", "SINTER", "SDIFF"}  # every argument a key


def _args(src: str, start: int) -> list[str]:
    """The top-level arguments of the call whose '(' is at ``start`` (strings and brackets skipped)."""
    depth, i, cur, out, quote = 0, start + 1, "", [], ""
    while i < len(src):
        ch = src[i]
        if quote:
            cur += ch
            if ch == "\\":
                cur += src[i + 1]
                i += 1
            elif ch == quote:
                quote = ""
        elif ch in "'\"":
            quote = ch
            cur += ch
        elif ch in "([{":
            depth += 1
            cur += ch
        elif ch in ")]}":
            if depth == 0:
                out.append(cur.strip())
                return out
            depth -= 1
            cur += ch
        elif ch == "," and depth == 0:
            out.append(cur.strip())
            cur = ""
        else:
            cur += ch
        i += 1
    raise ValueError("unbalanced call")


def _keys_bound(src: str) -> set[str]:
    """Names bound to a KEYS element and never assigned anything else."""
    names = set(re.findall(r"\blocal\s+(\w+)\s*=\s*KEYS\[[^\]]+\]\s*$", src, re.M))
    names |= set(re.findall(r"\bfor\s+\w+\s*,\s*(\w+)\s+in\s+ipairs\(KEYS\)", src))
    bound = set()
    for n in names:
        assignments = re.findall(rf"(?<![\w.]){n}\s*=(?!=)(.*)", src)
        if all(re.match(r"\s*KEYS\[[^\]]+\]\s*$", a) for a in assignments):
            bound.add(n)
    return bound


def violations(src: str) -> list[str]:
    """Each ``redis.call`` whose key is not a KEYS element, as the call's text."""
    bound = _keys_bound(src)
    out = []
    for m in re.finditer(r"redis\.p?call\s*\(", src):
        args = _args(src, m.end() - 1)
        cmd = args[0].strip("'\"").upper()
        if cmd in NO_KEY:
            continue
        keys = args[1:] if cmd in ALL_KEYS else args[1:2]
        if not keys:
            out.append(f"{args[0]} without a key")
        for k in keys:
            if not (re.fullmatch(r"KEYS\[.+\]", k) or k in bound):
                out.append(f"redis.call({', '.join(args[:2])}, ...)")
    return out


def scripts() -> dict[str, str]:
    """Every module-level string of broker/ that calls Redis from Lua, by module.name."""
    found: dict[str, str] = {}
    for info in pkgutil.walk_packages([str(ROOT)], "broker."):
        mod = importlib.import_module(info.name)
        for name, value in vars(mod).items():
            if isinstance(value, str) and ("redis.call(" in value or "redis.pcall(" in value):
                found[f"{info.name}.{name}"] = value
    return found


def test_every_file_with_lua_is_seen() -> None:
    """A script kept anywhere but in a module-level string would escape the check below."""
    seen = {n.rsplit(".", 1)[0] for n in scripts()}
    files = {".".join(p.relative_to(ROOT.parent).with_suffix("").parts)
             for p in ROOT.rglob("*.py") if "redis.call(" in p.read_text()}
    assert files <= seen, files - seen
    assert not list(ROOT.rglob("*.lua")), "a .lua file: load it into a module-level string"


@pytest.mark.parametrize("name", sorted(scripts()))
def test_the_script_declares_every_key(name: str) -> None:
    assert violations(scripts()[name]) == []


@pytest.mark.parametrize("bad", [
    "redis.call('HINCRBY', ARGV[1] .. ':metrics:placements', 'x', 1)",  # a key built from a prefix
    "local site = redis.call('HGET', KEYS[1], 'site')\nredis.call('HDEL', 'ns:active:' .. site, ARGV[1])",
    "local k = ARGV[2]\nredis.call('GET', k)",  # a key passed as an argument
    "local k = KEYS[1]\nk = ARGV[1]\nredis.call('GET', k)",  # a bound name reassigned
    "redis.call('DEL', KEYS[1], ARGV[1])",  # a multi-key command's second key
    "redis.pcall(name, ARGV[3], unpack(ARGV, 4))",
])
def test_the_check_bites(bad: str) -> None:
    assert violations(bad), bad


def test_the_check_passes_declared_keys() -> None:
    good = """
local job = KEYS[1]
redis.call('HGET', job, 'state')
for _, key in ipairs(KEYS) do redis.call('GET', key) end
redis.call('ZADD', KEYS[idx[cur]], 1, 'x')
redis.call(name, KEYS[tonumber(ARGV[a + 1])], unpack(ARGV, a + 3, a + 2 + n))
redis.call('TIME')
"""
    assert violations(good) == []

"""The layers stay apart: adapters know nothing of the broker; simulators know nothing of
either (they are judged independently, by the facilities' own clients); the API knows
nothing of the worker package; the pure rules (states, health, placement) touch no I/O."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

# where (a package or one module) -> the modules it must not import (a name and everything under it)
FORBIDDEN: dict[str, set[str]] = {
    "adapters": {"broker", "simulators"},
    "simulators": {"broker", "adapters"},
    "broker/api": {"broker.tasks", "broker.worker", "rq.worker"},
    "broker/states.py": {"redis", "httpx", "rq", "broker"},
    "broker/health.py": {"redis", "httpx", "rq", "broker.store", "broker.tasks", "broker.api"},
    "broker/placement.py": {"redis", "httpx", "rq", "broker.store", "broker.tasks", "broker.api"},
}


def _imports(path: Path) -> set[str]:
    """Every module a file imports, in full (``from a import b`` counts as ``a`` and ``a.b``),
    at any depth (an import inside a function is still a dependency)."""
    tree = ast.parse(path.read_text(), str(path))
    out: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            out.add(node.module)
            out |= {f"{node.module}.{a.name}" for a in node.names}
    return out


def _violations(imported: set[str], forbidden: set[str]) -> list[str]:
    return sorted(m for m in imported for f in forbidden if m == f or m.startswith(f + "."))


def test_the_matcher_sees_every_import_form(tmp_path: Path) -> None:
    src = tmp_path / "m.py"
    src.write_text(
        "import broker.tasks.health\nfrom broker import tasks\ndef f():\n    from broker.tasks import queues\n"
    )
    assert _violations(_imports(src), {"broker.tasks"}) == [
        "broker.tasks",
        "broker.tasks.health",
        "broker.tasks.queues",
    ]
    assert _violations({"broker.tasksx", "broker"}, {"broker.tasks"}) == []


@pytest.mark.parametrize("where", sorted(FORBIDDEN))
def test_no_forbidden_imports(where: str) -> None:
    target = ROOT / where
    files = [target] if target.suffix == ".py" else sorted(target.rglob("*.py"))
    assert files and all(f.exists() for f in files)
    bad = {str(f.relative_to(ROOT)): _violations(_imports(f), FORBIDDEN[where]) for f in files}
    assert {k: v for k, v in bad.items() if v} == {}

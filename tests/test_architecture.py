"""The house rules, checked on the source: every wing has the same rooms, imports flow one way.

- every wing has ``__init__.py`` (public API through :func:`frugalml.common.exports.lazy_exports`),
  ``cli.py``, ``demo.py`` and a ``bench/`` sub-package;
- no wing imports another wing, ``common`` imports no wing, nothing in ``src/`` imports the root
  ``frugalml.cli``;
- a wing's ``bench`` is imported only by its own ``cli.py`` and ``bench/`` (and ``benchmarks/``);
- there is no import cycle, counting imports inside function bodies;
- no function is longer than 120 lines or takes more than 12 positional parameters, except the few
  listed below with their reason.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from frugalml import SYSTEMS

SRC = Path(__file__).resolve().parents[1] / "src" / "frugalml"
WINGS = list(SYSTEMS)
MAX_LINES = 120
MAX_POSITIONAL = 12
# "wing/module.py:function" -> why it may stay long or wide.
EXEMPT: dict[str, str] = {}
GENERATED = ("_pb2.py", "_pb2_grpc.py")


def _module_name(path: Path) -> str:
    parts = path.relative_to(SRC.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _sources() -> dict[str, Path]:
    return {_module_name(p): p for p in SRC.rglob("*.py") if not p.name.endswith(GENERATED)}


MODULES = _sources()


def _imports(name: str, path: Path) -> set[str]:
    """Every frugalml module ``name`` imports anywhere in its file (function bodies included)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            for alias in node.names:
                full = f"{base}.{alias.name}"
                found.add(full if full in MODULES else base)
    return {m for m in found if m.startswith("frugalml")}


GRAPH = {name: _imports(name, path) for name, path in MODULES.items()}


def _wing(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[1] in SYSTEMS else None


@pytest.mark.parametrize("wing", WINGS)
def test_wing_has_the_same_rooms(wing):
    root = SRC / wing
    for room in ("__init__.py", "cli.py", "demo.py", "bench/__init__.py"):
        assert (root / room).is_file(), f"{wing} has no {room}"
    init = (root / "__init__.py").read_text()
    assert "lazy_exports(__name__" in init, f"{wing}/__init__.py should export through lazy_exports"
    stray = [
        p.name for p in root.glob("*.py") if p.stem in {"bench", "benchmark", "experiments", "reproduce"}
    ]
    assert not stray, f"{wing}: measurement code belongs in {wing}/bench/, found {stray}"


@pytest.mark.parametrize("wing", [*WINGS, "common"])
def test_imports_flow_one_way(wing):
    for module, imported in GRAPH.items():
        if not module.startswith(f"frugalml.{wing}"):
            continue
        for other in imported:
            assert other != "frugalml.cli", f"{module} imports the root CLI"
            target = _wing(other)
            if wing == "common":
                assert target is None, f"common module {module} imports wing module {other}"
            else:
                assert target in (None, wing), f"{module} imports another wing: {other}"
            if target == wing and ".bench" in other + "." and ".bench" not in module + ".":
                assert module == f"frugalml.{wing}.cli", (
                    f"{module} imports {other}: only cli.py may use bench"
                )


def _cycles() -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in GRAPH.get(node, ()):
            if nxt not in GRAPH:
                continue
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in GRAPH:
        if node not in index:
            visit(node)
    return found


@pytest.mark.parametrize("wing", [*WINGS, "common"])
def test_no_import_cycle(wing):
    mine = [c for c in _cycles() if any(m.startswith(f"frugalml.{wing}") for m in c)]
    assert not mine, f"import cycles: {mine}"


def _functions(path: Path):
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            yield node


def _is_exempt_width(node: ast.FunctionDef | ast.AsyncFunctionDef, path: Path) -> bool:
    """numba kernels take flat arrays; CLI commands take one parameter per option."""
    names = {ast.unparse(d).split("(")[0] for d in node.decorator_list}
    return any("njit" in n or "jit" in n for n in names) or (
        path.name == "cli.py" and any(n.endswith((".command", ".callback")) for n in names)
    )


@pytest.mark.parametrize("wing", [*WINGS, "common"])
def test_functions_are_short_and_narrow(wing):
    problems = []
    for path in sorted((SRC / wing).rglob("*.py")):
        if path.name.endswith(GENERATED):
            continue
        rel = path.relative_to(SRC).as_posix()
        for node in _functions(path):
            key = f"{rel}:{node.name}"
            if key in EXEMPT:
                continue
            length = node.end_lineno - node.lineno + 1
            positional = len(node.args.posonlyargs) + len(node.args.args)
            if length > MAX_LINES:
                problems.append(f"{key} has {length} lines (at most {MAX_LINES})")
            if positional > MAX_POSITIONAL and not _is_exempt_width(node, path):
                problems.append(f"{key} takes {positional} positional parameters (at most {MAX_POSITIONAL})")
    assert not problems, "\n".join(problems)

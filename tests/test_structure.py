"""Structure rules read from the source: plugins never import each other's modules, and the
core's modules import each other without a circle (module level; imports inside functions
are how the core stays cheap to import and are allowed)."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _imports(path: Path, *, top_level_only: bool) -> set[str]:
    tree = ast.parse(path.read_text())
    nodes = tree.body if top_level_only else list(ast.walk(tree))
    if top_level_only:  # `if TYPE_CHECKING:` blocks never run, so they are left out
        nodes = [n for n in nodes if isinstance(n, ast.Import | ast.ImportFrom)]
    found: set[str] = set()
    for node in nodes:
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
    return found


def test_no_plugin_imports_another_plugins_modules():
    """Bug caught: l2sp imported transferlab_objectives.losses (plugins must share through
    the core, or one plugin's refactor breaks another)."""
    offenders = []
    for plugin in sorted((ROOT / "plugins").iterdir()):
        if not plugin.name.startswith("transferlab_"):
            continue
        for path in plugin.rglob("*.py"):
            for module in _imports(path, top_level_only=False):
                top = module.split(".")[0]
                if top.startswith("transferlab_") and top != plugin.name:
                    offenders.append(f"{path.relative_to(ROOT)} imports {module}")
    assert offenders == []


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT / "core").with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def test_core_modules_import_without_a_circle():
    """Bug caught: api.py imported the harness's FeatureStore, which imports api."""
    modules = {_module_name(p): p for p in (ROOT / "core" / "transferlab").rglob("*.py")}
    graph = {
        name: {m for m in _imports(path, top_level_only=True) if m in modules and m != name}
        for name, path in modules.items()
    }
    state: dict[str, int] = {}
    cycle: list[str] = []

    def visit(node: str, trail: list[str]) -> bool:
        state[node] = 1
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                cycle.extend([*trail, node, nxt])
                return True
            if nxt not in state and visit(nxt, [*trail, node]):
                return True
        state[node] = 2
        return False

    for name in sorted(graph):
        if name not in state and visit(name, []):
            break
    assert cycle == [], " -> ".join(cycle)
    contracts = _imports(modules["transferlab.api"], top_level_only=False)
    assert not [m for m in contracts if m.startswith("transferlab.harness")]  # even lazily


def test_no_getattr_probe_for_a_declared_contract():
    """Every optional capability is declared on the ABCs; nothing probes for it."""
    probes = ("source_head", "invalidate_fingerprint", "base_model", '"setup"', '"extra"')
    offenders = []
    for folder in ("core", "plugins"):
        for path in (ROOT / folder).rglob("*.py"):
            for line in path.read_text().splitlines():
                if "getattr(" in line and any(p in line for p in probes):
                    offenders.append(f"{path.relative_to(ROOT)}: {line.strip()}")
    assert offenders == []

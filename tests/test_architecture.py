"""The layering that keeps the package readable, checked from the source (no imports run).

- no import cycle between modules, lazy imports inside functions included (a package's
  own ``__init__`` importing its submodules is how a package is made, not a cycle);
- lower layers never import upper ones: the library (store, models, search, indexer...)
  imports neither the CLI nor the web layer, and the stores import no model runtime;
- the library never prints or exits: ``print(``, ``sys.exit`` and ``click`` stay in ``cli/``.
"""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"
PACKAGE = SRC / "lookalike"


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules() -> dict[str, ast.Module]:
    return {_module_name(p): ast.parse(p.read_text(), str(p)) for p in PACKAGE.rglob("*.py")}


def _runtime_imports(tree: ast.Module) -> set[str]:
    """Modules of lookalike a module imports at run time, at the top or inside functions
    (a lazy import still ties the two modules together), not under ``if TYPE_CHECKING``."""
    found: set[str] = set()
    for node in _walk_runtime(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("lookalike"):
            found.add(node.module)
            for alias in node.names:  # "from lookalike.web import api" imports a submodule
                found.add(f"{node.module}.{alias.name}")
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("lookalike"))
    return found


def _walk_runtime(tree: ast.AST) -> list[ast.AST]:
    nodes: list[ast.AST] = []
    for child in ast.iter_child_nodes(tree):
        if isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test):
            nodes.extend(n for branch in child.orelse for n in [branch, *_walk_runtime(branch)])
            continue
        nodes.append(child)
        nodes.extend(_walk_runtime(child))
    return nodes


def _all_imports(tree: ast.Module) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
    return found


def test_no_import_cycles() -> None:
    modules = _modules()
    graph = {
        name: {d for d in _runtime_imports(tree) if d in modules and d != name}
        for name, tree in modules.items()
    }
    # a package importing its own submodules is not a cycle edge back into the package
    for name, deps in graph.items():
        graph[name] = {d for d in deps if name != d.rsplit(".", 1)[0]}
        graph[name] = {d for d in graph[name] if not name.startswith(d + ".")}
    state: dict[str, int] = {}
    cycles: list[list[str]] = []

    def visit(node: str, stack: list[str]) -> None:
        state[node] = 1
        for dep in sorted(graph[node]):
            if state.get(dep) == 1:
                cycles.append([*stack[stack.index(dep) :], dep])
            elif dep not in state:
                visit(dep, [*stack, dep])
        state[node] = 2

    for name in sorted(graph):
        if name not in state:
            visit(name, [name])
    assert cycles == [], "import cycles: " + "; ".join(" -> ".join(c) for c in cycles)


def test_lower_layers_do_not_import_upper_ones() -> None:
    upper = ("lookalike.cli", "lookalike.web")
    for name, tree in _modules().items():
        if name.startswith(upper) or name == "lookalike.__main__":
            continue
        bad = sorted(i for i in _all_imports(tree) if i.startswith(upper))
        assert bad == [], f"{name} imports {bad}"
        if name.startswith("lookalike.store"):
            models = sorted(i for i in _all_imports(tree) if i.startswith("lookalike.models"))
            assert models == [], f"{name} imports a model runtime: {models}"


#: calls allowed where they do not run in the user's process: a decode worker process ends
#: itself when its parent was killed (it cannot raise to anyone)
_ALLOWED_EXITS = {("lookalike.decode_pool", "os._exit")}


def test_the_library_never_prints_or_exits() -> None:
    for name, tree in _modules().items():
        if name.startswith("lookalike.cli") or name == "lookalike.__main__":
            continue
        assert "click" not in _all_imports(tree), f"{name} imports click"
        for node in ast.walk(tree):
            if isinstance(node, ast.Call):
                func = node.func
                called = (
                    func.id
                    if isinstance(func, ast.Name)
                    else f"{getattr(func.value, 'id', '')}.{func.attr}"
                    if isinstance(func, ast.Attribute)
                    else ""
                )
                if (name, called) in _ALLOWED_EXITS:
                    continue
                assert called not in ("print", "sys.exit", "exit", "quit", "os._exit"), (
                    f"{name} calls {called}() (line {node.lineno}): raise a typed error instead"
                )

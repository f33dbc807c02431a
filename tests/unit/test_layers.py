"""The package's layers: each module imports only the layers below it, no import cycles, and
a handful of plain modules beside the subpackages."""
from __future__ import annotations

import ast
from pathlib import Path
from typing import Dict, Iterator, Set, Tuple

import pastset

PACKAGE = Path(pastset.__file__).parent

#: what each layer (a subpackage, or a plain module of pastset/) may import besides itself
ALLOWED: Dict[str, Set[str]] = {
    "errors": set(),
    "wire": {"errors"},
    "observe": {"errors", "wire"},
    "space": {"errors", "wire"},
    "client": {"errors", "wire"},
    "settings": {"errors", "wire"},
    "server": {"errors", "wire", "space", "observe"},
    "launch": {"errors", "wire", "settings", "observe"},
    "run": {"errors", "wire", "observe", "space", "client", "settings", "server", "launch"},
    "cli": {"errors", "wire", "observe", "space", "client", "settings", "server", "launch", "run"},
    "element": {"space"},
    # the package's face: server, launch and space only on first use of Server, hookimpl and
    # Element (and for the type checker), so importing pastset loads client and wire alone
    "__init__": {"errors", "client", "server", "launch", "space"},
    "__main__": {"cli"},
}
#: the most plain modules pastset/ itself may hold
TOP_LEVEL_MODULES = {"__init__", "__main__", "errors", "element"}


def layer_of(path: Path) -> str:
    relative = path.relative_to(PACKAGE)
    return relative.parts[0] if len(relative.parts) > 1 else relative.stem


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _type_checking_only(tree: ast.AST) -> Set[int]:
    """Ids of the nodes under ``if TYPE_CHECKING:``: imports for type checkers, never run."""
    skipped: Set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING":
            for child in node.body:
                skipped.update(id(n) for n in ast.walk(child))
    return skipped


def imports_of(path: Path) -> Iterator[Tuple[str, int, bool]]:
    """(absolute module imported, line, at module level) for every pastset import in ``path``
    that runs (those under ``if TYPE_CHECKING:`` do not)."""
    tree = ast.parse(path.read_text(), str(path))
    package = module_name(path) if path.name == "__init__.py" else module_name(path).rpartition(".")[0]
    top_level = {id(node) for node in tree.body}
    never_run = _type_checking_only(tree)
    for node in ast.walk(tree):
        if id(node) in never_run:
            continue
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target == "pastset" or target.startswith("pastset."):
                if target == "pastset" or target.count(".") == 1 and not node.module:
                    for alias in node.names:  # from . import x: x may be a module
                        yield f"{target}.{alias.name}", node.lineno, id(node) in top_level
                else:
                    yield target, node.lineno, id(node) in top_level
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("pastset"):
                    yield alias.name, node.lineno, id(node) in top_level


def layer_of_module(name: str) -> str:
    parts = name.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def sources() -> Iterator[Path]:
    return iter(sorted(PACKAGE.rglob("*.py")))


def test_pastset_keeps_only_a_handful_of_plain_modules():
    plain = {p.stem for p in PACKAGE.glob("*.py")}
    assert plain <= TOP_LEVEL_MODULES, f"plain modules outside every layer: {sorted(plain - TOP_LEVEL_MODULES)}"
    assert set(ALLOWED) >= {p.name for p in PACKAGE.iterdir() if (p / "__init__.py").exists()}


def test_every_import_goes_down_the_layers():
    wrong = []
    for path in sources():
        layer = layer_of(path)
        for target, line, _ in imports_of(path):
            other = layer_of_module(target)
            if other in ("__version__",) or target in ("pastset.__version__",):
                continue
            if other != layer and other not in ALLOWED[layer]:
                wrong.append(f"{path.relative_to(PACKAGE)}:{line} ({layer}) imports {target} ({other})")
    assert not wrong, "imports against the layers:\n" + "\n".join(wrong)


def test_no_import_cycles_between_modules():
    modules = {module_name(p): p for p in sources()}
    graph = {name: set() for name in modules}
    for name, path in modules.items():
        for target, _, top in imports_of(path):
            while target not in modules and "." in target:
                target = target.rpartition(".")[0]
            if top and target in modules and target != name and not name.startswith(target + "."):
                graph[name].add(target)
    seen: Dict[str, int] = {}  # 1: on the current path, 2: done
    cycles = []

    def visit(node: str, trail: list) -> None:
        seen[node] = 1
        for nxt in sorted(graph[node]):
            if seen.get(nxt) == 1:
                cycles.append(" -> ".join(trail[trail.index(nxt):] + [nxt]) if nxt in trail else nxt)
            elif nxt not in seen:
                visit(nxt, trail + [nxt])
        seen[node] = 2

    for name in sorted(graph):
        if name not in seen:
            visit(name, [name])
    assert not cycles, "import cycles at module level:\n" + "\n".join(cycles)



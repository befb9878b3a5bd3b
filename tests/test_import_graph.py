"""No import cycles in the package: the import graph, drawn from the source, is acyclic.

Every `import` / `from ... import` statement counts, wherever it sits: at
module level or inside a function (a lazy import that points back up is
still a circle a reader has to follow). Relative imports are resolved;
`from . import x` is an edge to the submodule x when x is a module, else to
the package. Imports under `if TYPE_CHECKING:` never run and are left out.
Importing a submodule runs its package's `__init__` first; that implicit
step is not an edge (a package that imports its own submodules is no circle).
Dynamic lookups (`importlib.import_module(name)`, the space registry's way
to load the built-in spaces) are not import statements and are not edges.
"""

from __future__ import annotations

import ast
import textwrap
from pathlib import Path

import rfsweep

PACKAGE_DIR = Path(rfsweep.__file__).parent


def modules_of(root: Path, package: str) -> dict[str, Path]:
    """{dotted module name: file} of every module of the package under `root` (a package directory)."""
    found = {}
    for path in sorted(root.rglob("*.py")):
        parts = list(path.relative_to(root).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        found[".".join([package, *parts])] = path
    return found


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _import_nodes(tree: ast.AST):
    """Import statements anywhere in the tree, except the bodies of `if TYPE_CHECKING:`."""
    stack = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, ast.If) and _is_type_checking(node):
            stack.extend(node.orelse)
            continue
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node
        stack.extend(ast.iter_child_nodes(node))


def import_graph(root: Path, package: str) -> dict[str, set[str]]:
    """{module: modules of the package it imports} from the AST of every file under `root`."""
    modules = modules_of(root, package)
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for name, path in modules.items():
        is_package = path.name == "__init__.py"
        here = name if is_package else name.rpartition(".")[0]  # the package relative imports start from
        for node in _import_nodes(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            else:
                if node.level:
                    base = here.split(".")
                    base = base[:len(base) - (node.level - 1)]
                    origin = ".".join(base + ([node.module] if node.module else []))
                else:
                    origin = node.module or ""
                targets = []
                for alias in node.names:
                    sub = f"{origin}.{alias.name}"
                    targets.append(sub if sub in modules else origin)
            for target in targets:
                # `import rfsweep.a.b` names the deepest module of the package that exists
                while target and target not in modules:
                    target = target.rpartition(".")[0]
                if target and target != name:
                    graph[name].add(target)
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle as [a, b, ..., a], or None (iterative depth-first search)."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    for start in sorted(graph):
        if state.get(start):
            continue
        path, iters = [start], [iter(sorted(graph[start]))]
        state[start] = 1
        while path:
            nxt = next(iters[-1], None)
            if nxt is None:
                state[path.pop()] = 2
                iters.pop()
            elif state.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt]
            elif not state.get(nxt):
                state[nxt] = 1
                path.append(nxt)
                iters.append(iter(sorted(graph.get(nxt, ()))))
    return None


def test_package_has_no_import_cycle():
    graph = import_graph(PACKAGE_DIR, "rfsweep")
    assert len(graph) > 20 and "rfsweep.space" in graph
    cycle = find_cycle(graph)
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_engines_writer_distributed_sweep_know_no_concrete_space():
    """The machinery depends on the Space interface only (issue 20)."""
    graph = import_graph(PACKAGE_DIR, "rfsweep")
    concrete = {"rfsweep.grid", "rfsweep.blocks", "rfsweep.chain_sweep", "rfsweep.block_sweep",
                "rfsweep.kernel", "rfsweep.block_kernel"}

    def reach(start):
        seen, todo = set(), [start]
        while todo:
            for nxt in graph[todo.pop()] - seen:
                seen.add(nxt)
                todo.append(nxt)
        return seen

    for module in ("rfsweep.engines", "rfsweep.writer", "rfsweep.distributed", "rfsweep.sweep"):
        assert not reach(module) & concrete, (module, sorted(reach(module) & concrete))


def _write_package(root: Path, files: dict[str, str]) -> Path:
    for relative, text in files.items():
        path = root / "pkg" / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
    return root / "pkg"


def test_detector_finds_a_function_level_cycle_through_relative_imports(tmp_path):
    root = _write_package(tmp_path, {
        "__init__.py": "",
        "a.py": "from .b import thing\n",
        "b.py": "thing = 1\ndef later():\n    from .sub import c\n",
        "sub/__init__.py": "",
        "sub/c.py": "from .. import a\n",
    })
    graph = import_graph(root, "pkg")
    assert graph["pkg.a"] == {"pkg.b"} and graph["pkg.b"] == {"pkg.sub.c"} and graph["pkg.sub.c"] == {"pkg.a"}
    cycle = find_cycle(graph)
    assert cycle is not None and cycle[0] == cycle[-1] and set(cycle) == {"pkg.a", "pkg.b", "pkg.sub.c"}


def test_detector_resolves_names_and_ignores_type_checking(tmp_path):
    root = _write_package(tmp_path, {
        "__init__.py": "VERSION = 1\n",
        "a.py": ("from typing import TYPE_CHECKING\nfrom . import VERSION, b\nimport pkg.sub.c\n"
                 "if TYPE_CHECKING:\n    from .d import D\n"),
        "b.py": "",
        "d.py": "from . import a\n",
        "sub/__init__.py": "",
        "sub/c.py": "import os\n",
    })
    graph = import_graph(root, "pkg")
    assert graph["pkg.a"] == {"pkg", "pkg.b", "pkg.sub.c"}  # VERSION is a name: the package itself
    assert graph["pkg.d"] == {"pkg.a"}
    assert find_cycle(graph) is None  # a -> d only under TYPE_CHECKING

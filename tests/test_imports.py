"""The package's imports flow one way (docs/architecture.md).

Every module of ``vlaforge`` is parsed (its import statements, function-local ones included, since
they run too): the graph of imports between vlaforge modules has no cycle, and no library module
imports a stage, a component or a pipeline. Front ends may: ``vlaforge.stages`` (the stage entry
points), ``vlaforge.cli`` (the command line), ``vlaforge.run`` (``vlaforge run``, which runs
pipelines/ on kfp.local) and ``vlaforge.ablation`` (``vlaforge ablation``, which runs stages).

An edge goes to the module named: ``from vlaforge.policy import Policy`` depends on
``vlaforge.policy`` (its ``__init__``), ``from vlaforge.policy.interface import Policy`` on
``vlaforge.policy.interface`` alone.
"""

from __future__ import annotations

import ast
import importlib.util
import pkgutil

import vlaforge

FRONT_ENDS = ("vlaforge.stages", "vlaforge.cli", "vlaforge.run", "vlaforge.ablation")
UPPER_FLOORS = ("vlaforge.stages", "components", "pipelines")


def _modules() -> dict[str, str]:
    """Module name -> source file, for every module of the vlaforge package."""
    found = {"vlaforge": vlaforge.__file__}
    for info in pkgutil.walk_packages(vlaforge.__path__, "vlaforge."):
        found[info.name] = importlib.util.find_spec(info.name).origin
    return found


def _within(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


def _imports(name: str, path: str, modules: dict[str, str]) -> set[str]:
    """Absolute names of what ``name`` imports: a module where the name is one, else its package."""
    tree = ast.parse(open(path, encoding="utf-8").read(), path)
    package = name if path.endswith("__init__.py") else name.rpartition(".")[0]
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                parent = ".".join(parts[:len(parts) - node.level + 1])
                base = f"{parent}.{base}" if base else parent
            for alias in node.names:
                full = f"{base}.{alias.name}"
                names.add(full if full in modules else base)
    return names


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    return {name: _imports(name, path, modules) for name, path in modules.items()}


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One cycle per strongly connected component of more than one module (Tarjan), or a self-import."""
    index, low, stack, on_stack, cycles = {}, {}, [], set(), []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for dep in sorted(graph[node] & graph.keys()):
            if dep not in index:
                visit(dep)
                low[node] = min(low[node], low[dep])
            elif dep in on_stack:
                low[node] = min(low[node], index[dep])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1 or node in graph[node]:
                cycles.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return cycles


def test_every_module_is_seen():
    graph = _graph()
    assert {"vlaforge.cli", "vlaforge.stages.vla_finetune", "vlaforge.policy.interface"} <= graph.keys()
    assert "vlaforge.policy.interface" in graph["vlaforge.serve.server"]


def test_no_import_cycles():
    cycles = _cycles(_graph())
    assert not cycles, "import cycles among vlaforge modules:\n" + "\n".join(" <-> ".join(c) for c in cycles)


def test_library_does_not_import_stages_components_or_pipelines():
    bad = sorted(f"{name} imports {dep}" for name, deps in _graph().items()
                 if not any(_within(name, front) for front in FRONT_ENDS)
                 for dep in deps if any(_within(dep, upper) for upper in UPPER_FLOORS))
    assert not bad, "library modules import a stage, a component or a pipeline:\n" + "\n".join(bad)


def test_cycle_finder_finds_a_cycle():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []

"""The package's imports go one way (static: read with ast, nothing imported): no cycles,
nothing below ui/ imports Gradio or the UI, and only backend.py imports a backend package."""

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "cifar_demo"
BACKEND_PACKAGES = {"tensorflow", "torch", "jax", "jaxlib"}


def module_name(path):
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path):
    """Every module name an import statement in `path` names (absolute imports only: the
    package uses no relative ones, which this test also checks)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            assert node.level == 0, f"{path.name}: relative import"
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
    return names


def package_graph():
    modules = {module_name(path): path for path in PACKAGE.rglob("*.py")}
    return {name: {target for target in imports_of(path) if target in modules and target != name
                   and not name.startswith(target + ".")}
            for name, path in modules.items()}, modules


def find_cycle(graph):
    """One import cycle as a list of module names, or None."""
    state = {}

    def visit(node, trail):
        state[node] = "open"
        for target in sorted(graph[node]):
            if state.get(target) == "open":
                return trail[trail.index(target):] + [target]
            if target not in state:
                found = visit(target, [*trail, target])
                if found:
                    return found
        state[node] = "done"
        return None

    for node in sorted(graph):
        if node not in state:
            found = visit(node, [node])
            if found:
                return found
    return None


def test_find_cycle_finds_one():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set(), "c": {"a", "b"}}) is None


def test_the_package_has_no_import_cycle():
    graph, _ = package_graph()
    assert len(graph) > 20
    assert find_cycle(graph) is None


def test_only_the_ui_imports_gradio_and_nothing_below_it_imports_the_ui():
    _, modules = package_graph()
    for name, path in modules.items():
        if name.startswith("cifar_demo.ui"):
            continue
        named = imports_of(path)
        assert not {n for n in named if n.split(".")[0] == "gradio"}, name
        assert not {n for n in named if n.startswith("cifar_demo.ui")}, name


def test_only_backend_py_imports_a_backend_package():
    _, modules = package_graph()
    importers = {name for name, path in modules.items()
                 if {n.split(".")[0] for n in imports_of(path)} & BACKEND_PACKAGES}
    assert importers == {"cifar_demo.backend"}

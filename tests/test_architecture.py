"""The shape of the house (issue 13): the import graph of zoo/, plugins/ and cli/ has no cycle, and no
module imports another module's private names. Read from the source with `ast`: nothing is imported."""

from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PACKAGES = {"zoo": "zoo", "plugins": "zoo.plugins", "cli": "zoo.cli"}  # folder -> installed package


def _modules() -> dict[str, Path]:
    found = {}
    for folder, package in PACKAGES.items():
        for path in (REPO / folder).rglob("*.py"):
            parts = path.relative_to(REPO / folder).with_suffix("").parts
            found[".".join([package, *parts]).removesuffix(".__init__")] = path
    return found


def _imports(path: Path):
    """(module, names) of every import that runs: `if TYPE_CHECKING:` blocks are left out."""
    tree = ast.parse(path.read_text())
    checking = {id(n) for node in ast.walk(tree) if isinstance(node, ast.If)
                and getattr(node.test, "id", "") == "TYPE_CHECKING" for n in ast.walk(node)}
    for node in ast.walk(tree):
        if id(node) in checking:
            continue
        if isinstance(node, ast.ImportFrom) and node.module and not node.level:
            yield node.module, [a.name for a in node.names]
        elif isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, []


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for name, path in modules.items():
        for module, names in _imports(path):
            for target in [f"{module}.{n}" for n in names] + [module]:
                if target in modules and target != name:
                    graph[name].add(target)
                    break
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index, low, stack, on, found, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in graph:
        if v not in index:
            visit(v)
    return found


def test_the_import_graph_has_no_cycle():
    graph = _graph()
    assert len(graph) > 50 and "zoo.runs.loading" in graph["zoo.api"]  # the graph was read: not a vacuous check
    assert _cycles(graph) == []


def test_a_cycle_is_found_where_there_is_one():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_no_module_imports_another_modules_private_names():
    modules = _modules()
    private = [(name, module, n) for name, path in modules.items() for module, names in _imports(path)
               if module in modules for n in names if n.startswith("_") and not n.startswith("__")]
    assert private == []


def _plugin_facts() -> tuple[set[str], set[str]]:
    """The built-in architectures' names and their config fields, read from plugins/ itself."""
    names, fields = set(), set()
    for path in (REPO / "plugins").glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ClassDef):
                for item in node.body:
                    if isinstance(item, ast.Assign) and [getattr(t, "id", "") for t in item.targets] == ["name"] \
                            and isinstance(item.value, ast.Constant):
                        names.add(item.value.value)
                    if node.name.endswith("Config") and isinstance(item, ast.AnnAssign):
                        fields.add(item.target.id)
    return names, fields


def test_no_module_under_zoo_names_an_architecture_or_reads_a_plugin_config_field():
    names, fields = _plugin_facts()
    assert {"convae", "vae", "gan", "classifier"} <= names and {"noise", "beta", "head"} <= fields  # read for real
    found = []
    for path in sorted((REPO / "zoo").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Constant) and node.value in names:  # a name as a value, not in a docstring
                found.append(f"{path.relative_to(REPO)}:{node.lineno} {node.value!r}")
            # `<model>.config.FIELD`: the config a plugin defines, read from outside the plugin
            if isinstance(node, ast.Attribute) and node.attr in fields and isinstance(node.value, ast.Attribute) \
                    and node.value.attr == "config":
                found.append(f"{path.relative_to(REPO)}:{node.lineno} .config.{node.attr}")
            if isinstance(node, ast.Call) and getattr(node.func, "id", "") == "getattr" and len(node.args) >= 2 \
                    and isinstance(node.args[1], ast.Constant) and node.args[1].value in fields:
                found.append(f"{path.relative_to(REPO)}:{node.lineno} getattr(..., {node.args[1].value!r})")
    assert not found, found


# A zoo module imported inside a function is a cycle dodged or a start-up cost deferred; the one kept
# says why where it stands. (cli/ defers importing the library so that `zoo --help` needs no torch.)
DEFERRED = {("zoo/search/space.py", "zoo.training.fit")}  # reading a space file imports no torch


def test_no_function_in_zoo_or_plugins_imports_a_zoo_module():
    late = set()
    for root in ("zoo", "plugins"):
        for path in sorted((REPO / root).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                    for sub in ast.walk(node):
                        module = sub.module if isinstance(sub, ast.ImportFrom) else \
                            (sub.names[0].name if isinstance(sub, ast.Import) else None)
                        if module and module.split(".")[0] == "zoo":
                            late.add((str(path.relative_to(REPO)), module))
    assert late == DEFERRED, sorted(late - DEFERRED)


def test_the_facade_is_thin_and_no_module_under_zoo_outgrows_one_job():
    sizes = {str(p.relative_to(REPO)): len(p.read_text().splitlines()) for p in (REPO / "zoo").rglob("*.py")}
    assert sizes["zoo/api.py"] <= 250
    assert max(sizes.values()) <= 400, sorted(sizes.items(), key=lambda kv: -kv[1])[:3]

"""The package's layers import only downward, and no two modules import each other.

Read from the source (every `import`, also those inside functions, which is where ganctl keeps
TensorFlow), so a lazy import cannot hide an upward dependency. README "How the code is laid
out" describes the same layers.
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

import ganctl

PACKAGE = Path(ganctl.__file__).parent

# Lowest first. A module may import its own layer and the layers below it, never above.
LAYERS = [
    ("errors", "config"),                                   # no TF; every rule about values
    ("images", "rundir", "replicas", "registry"),           # small shared facts
    ("datasets", "models", "losses", "metrics"),            # the parts
    ("core",),                                              # build, generate, checkpoint, state
    ("evaluation", "reporting", "exporting"),               # score, show and ship a run
    ("training",),                                          # the loop and its step
    ("validate", "commands", "cli", "bench", "__main__", "__init__"),   # thin shells at the top
]
LAYER_OF = {name: level for level, names in enumerate(LAYERS) for name in names}


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in PACKAGE.rglob("*.py") if "conf" not in p.parts[-2:-1]}


def imported(path: Path, name: str) -> set[str]:
    """The ganctl modules `path` imports, wherever in the file the import stands."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("ganctl")}
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("ganctl"):
            # `from ganctl.x import y` may name a module y as well as an object of x.
            found.add(node.module)
            found |= {f"{node.module}.{a.name}" for a in node.names}
    known = modules()
    return {m for m in found if m in known and m != name}


def layer(module: str) -> int:
    top = module.split(".")[1] if "." in module else "__init__"
    assert top in LAYER_OF, f"{module} belongs to no layer: add ganctl.{top} to LAYERS"
    return LAYER_OF[top]


def import_graph() -> dict[str, set[str]]:
    return {name: imported(path, name) for name, path in modules().items()}


def test_every_module_imports_only_its_own_layer_or_below():
    upward = [f"{module} (layer {layer(module)}) imports {target} (layer {layer(target)})"
              for module, targets in import_graph().items() for target in sorted(targets)
              if layer(target) > layer(module) and not _is_parent_package(target, module)]
    assert not upward, "imports that run upward:\n" + "\n".join(upward)


def _is_parent_package(target: str, module: str) -> bool:
    # A package's __init__ re-exporting its own modules is not an upward import.
    return module.startswith(target + ".") or target.startswith(module + ".")


def test_no_import_cycles():
    graph = import_graph()
    # A package's __init__ that re-exports its modules is not a cycle with them.
    graph = {m: {t for t in ts if not _is_parent_package(t, m)} for m, ts in graph.items()}
    cycles, state = [], {}

    def visit(node, path):
        state[node] = "open"
        for target in sorted(graph.get(node, ())):
            if state.get(target) == "open":
                cycles.append(" -> ".join(path[path.index(target):] + [target]))
            elif target not in state:
                visit(target, path + [target])
        state[node] = "done"

    for node in sorted(graph):
        if node not in state:
            visit(node, [node])
    assert not cycles, "import cycles:\n" + "\n".join(cycles)


@pytest.mark.parametrize("planted", ["ganctl.commands.train", "ganctl.training.loop"])
def test_the_check_sees_an_upward_import(tmp_path, planted):
    """The rule itself can fail: a model importing a command or the loop is reported."""
    source = tmp_path / "planted.py"
    source.write_text(f"def f():\n    from {planted} import run\n")
    assert planted in imported(source, "ganctl.models.planted")
    assert layer(planted) > layer("ganctl.models.planted")


def test_the_readme_describes_these_layers():
    """README "How the code is laid out" names every top-level module in the layer it is in."""
    readme = (PACKAGE.parent / "README.md").read_text()
    section = readme.split("## How the code is laid out", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("| ") and "`" in line]
    described = [{cell.strip("`/").split("/")[0].removesuffix(".py")
                  for cell in row.split("|")[2].replace(",", " ").split()} for row in rows]
    expected = [set(names) - {"__main__", "__init__"} for names in LAYERS]
    assert described == expected
    on_disk = {p.stem if p.is_file() else p.name for p in PACKAGE.iterdir()
               if (p.suffix == ".py" or (p / "__init__.py").is_file()) and p.name != "data"}
    assert on_disk - {"__main__", "__init__"} == set().union(*expected)

"""The architecture rules of docs/ARCHITECTURE.md and issue 9, checked on the source tree.

- no module of LuDosimetryLib or LuResponseLib is over 700 lines;
- no import cycle between Lib modules, imports inside functions included: every module is parsed
  with ``ast``, every ``import``/``from ... import`` anywhere in it (relative ones resolved against
  the module's package) becomes an edge to the Lib module it loads; importing a package counts as
  importing its ``__init__``, ``from pkg import name`` counts as importing ``pkg.name`` when that is a
  module and ``pkg``'s ``__init__`` otherwise;
- the Libs never import slicer, qt, ctk, vtk or sitkUtils (they run in a bare Python);
- the documented import paths (the README's Python snippet, the public names re-exported by the
  top package and the module paths of the earlier flat layout) still import, in a fresh interpreter.
"""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path


ROOT = Path(__file__).resolve().parents[1]
LIB_DIRS = {"LuDosimetryLib": ROOT / "LuDosimetry" / "LuDosimetryLib",
            "LuResponseLib": ROOT / "LuResponse" / "LuResponseLib"}
MAX_LINES = 700
FORBIDDEN = {"slicer", "qt", "ctk", "vtk", "vtkmodules", "sitkUtils"}


def _modules() -> dict[str, Path]:
    """Dotted module name -> file, for every .py file of both Libs (a package is its __init__)."""
    mods = {}
    for top, folder in LIB_DIRS.items():
        for f in sorted(folder.rglob("*.py")):
            parts = [top, *f.relative_to(folder).with_suffix("").parts]
            if parts[-1] == "__init__":
                parts = parts[:-1]
            mods[".".join(parts)] = f
    return mods


MODULES = _modules()


def _is_package(name: str) -> bool:
    return MODULES[name].name == "__init__.py"


def _imports(name: str) -> list[tuple[str, int]]:
    """(imported absolute module name, line) of every import statement in module ``name``,
    anywhere in the file (module level, functions, classes, try/except blocks)."""
    path = MODULES[name]
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    package = name if _is_package(name) else name.rpartition(".")[0]
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(a.name, node.lineno) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base_parts = package.split(".")
                if node.level > 1:
                    base_parts = base_parts[: len(base_parts) - (node.level - 1)]
                assert base_parts, f"{path}:{node.lineno}: relative import above the top package"
                base = ".".join(base_parts + ([node.module] if node.module else []))
            else:
                base = node.module
            for a in node.names:
                sub = f"{base}.{a.name}"
                # `from pkg import mod` loads pkg.mod; `from pkg import name` loads pkg (its __init__)
                found.append((sub if sub in MODULES else base, node.lineno))
    return found


def _lib_graph() -> dict[str, set[str]]:
    graph = {m: set() for m in MODULES}
    for m in MODULES:
        for target, _ in _imports(m):
            if target in MODULES and target != m:
                graph[m].add(target)
    return graph


def _sccs(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (each sorted), i.e. the sets of
    modules that import each other in a cycle."""
    index, low, on_stack, stack, sccs, counter = {}, {}, set(), [], [], [0]

    def strongconnect(v):  # Tarjan; the graph is small (recursion depth < 100)
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                strongconnect(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                sccs.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            strongconnect(v)
    return sorted(sccs)


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One shortest cycle through each strongly connected component of more than one module."""
    cycles = []
    for comp in _sccs(graph):
        start = comp[0]
        # breadth-first search back to start inside the component: a shortest cycle through start
        prev, frontier = {start: None}, [start]
        path = None
        while frontier and path is None:
            nxt = []
            for v in frontier:
                for w in sorted(graph[v] & set(comp)):
                    if w == start:
                        path = [v]
                        while prev[path[-1]] is not None:
                            path.append(prev[path[-1]])
                        path = path[::-1] + [start]
                        break
                    if w not in prev:
                        prev[w] = v
                        nxt.append(w)
                if path:
                    break
            frontier = nxt
        cycles.append(path)
    return cycles


def test_modules_found():
    # guards against the walk silently finding nothing after a move
    assert "LuDosimetryLib.pipeline" in MODULES and "LuDosimetryLib.physics.kinetics" in MODULES
    assert "LuResponseLib.table" in MODULES or any(m.startswith("LuResponseLib.table") for m in MODULES)
    assert len(MODULES) > 30


def test_relative_imports_resolve_to_modules():
    """The resolver itself: every relative import of the Libs resolves to an existing Lib module."""
    unresolved = []
    for m, path in MODULES.items():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        rel_lines = {n.lineno for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.level}
        unresolved += [f"{path.relative_to(ROOT)}:{line} -> {t}" for t, line in _imports(m)
                       if line in rel_lines and t not in MODULES]
    assert unresolved == []


def test_cycle_finder_on_a_known_graph():
    g = {"a": {"b"}, "b": {"c"}, "c": {"a", "d"}, "d": set(), "e": {"f"}, "f": {"e"}}
    assert _cycles(g) == [["a", "b", "c", "a"], ["e", "f", "e"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []
    assert _sccs({"a": {"b"}, "b": {"a", "c"}, "c": {"b"}}) == [["a", "b", "c"]]


def test_no_lib_module_over_700_lines():
    long = {str(p.relative_to(ROOT)): n for p in MODULES.values()
            if (n := len(p.read_text(encoding="utf-8").splitlines())) > MAX_LINES}
    assert long == {}, f"modules over {MAX_LINES} lines: {long}"


def test_no_import_cycles_between_lib_modules():
    graph = _lib_graph()
    cycles = _cycles(graph)
    text = "import cycles (imports inside functions included): " + "; ".join(" -> ".join(c) for c in cycles)
    assert cycles == [], text


def test_libs_never_import_slicer_qt_ctk_vtk():
    bad = []
    for m, path in MODULES.items():
        for target, line in _imports(m):
            if target.split(".")[0] in FORBIDDEN:
                bad.append(f"{path.relative_to(ROOT)}:{line} imports {target}")
        # dynamic imports by a constant name: importlib.import_module("slicer"), __import__("qt")
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if (isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant)
                    and isinstance(node.args[0].value, str)
                    and getattr(node.func, "attr", getattr(node.func, "id", "")) in ("import_module", "__import__")
                    and node.args[0].value.split(".")[0] in FORBIDDEN):
                bad.append(f"{path.relative_to(ROOT)}:{node.lineno} imports {node.args[0].value}")
    assert bad == []


def _readme_python_snippet() -> str:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    blocks = re.findall(r"```python\n(.*?)```", text, flags=re.DOTALL)
    assert blocks, "README.md has no ```python block"
    return "".join(line for block in blocks for line in block.splitlines(keepends=True)
                   if line.lstrip().startswith(("import ", "from ")))


def test_documented_import_paths_work_in_a_fresh_interpreter():
    snippet_imports = _readme_python_snippet()
    assert "run_manifest" in snippet_imports
    code = "\n".join([
        "import sys",
        f"sys.path[:0] = [{str(LIB_DIRS['LuDosimetryLib'].parent)!r}, {str(LIB_DIRS['LuResponseLib'].parent)!r}]",
        snippet_imports,
        # module paths of the earlier flat layout, and the public names of the top package
        "import LuDosimetryLib.kinetics",
        "from LuDosimetryLib.dose import voxel_s_value_kernel",
        "from LuDosimetryLib import run_manifest, fit_time_activity, PipelineOptions",
        "import LuDosimetryLib, LuDosimetryLib.physics.kinetics as k, LuDosimetryLib.physics.dose as d",
        "assert LuDosimetryLib.kinetics is k and voxel_s_value_kernel is d.voxel_s_value_kernel",
        "assert fit_time_activity is k.fit_time_activity",
        "import LuDosimetryLib.pipeline as p",
        "assert run_manifest is p.run_manifest and PipelineOptions is p.PipelineOptions",
        f"bad = sorted(m for m in sys.modules if m.split('.')[0] in {sorted(FORBIDDEN)!r})",
        "assert not bad, bad",
        "print('ok')",
    ])
    r = subprocess.run([sys.executable, "-c", code], check=False, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and r.stdout.strip() == "ok", r.stderr

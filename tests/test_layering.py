"""The library's layering: stage modules (one per stage or verb) are leaves that import only
the shared ground, never each other, and nothing imports in a circle. A helper one stage
lends another belongs in the ground; the README's Layout draws the same picture."""

import ast
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "ganflow"

# Shared by stages: files and tables, images, names, latents, media, the networks and
# their files, the training machinery, and the workflow's own helpers.
GROUND = {
    "annotate", "augment", "config", "contact", "convnets", "devices", "digest", "drawing", "feature_metrics",
    "feature_nets",
    "imaging", "inversion",
    "latents", "losses", "media", "names", "networks", "records", "runlog", "running", "swd", "tables", "trainer",
    "trainlog",
    "train_config", "weights",
}


def imports() -> dict[str, set[str]]:
    """module -> the ganflow modules it imports, anywhere in its body (a function-level
    import that dodges a cycle counts too)."""
    modules = {p.stem for p in PACKAGE.glob("*.py")} - {"__init__"}
    graph = {}
    for name in modules:
        found = set()
        for node in ast.walk(ast.parse((PACKAGE / f"{name}.py").read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom):
                relative = node.level > 0
                if not relative and not (node.module or "").startswith("ganflow"):
                    continue
                parts = (node.module or "").split(".")
                head = parts[0] if relative else (parts[1] if len(parts) > 1 else None)
                found |= {head} if head else {a.name for a in node.names}
            elif isinstance(node, ast.Import):
                found |= {a.name.split(".")[1] for a in node.names if a.name.startswith("ganflow.")}
        graph[name] = found & modules
    return graph


def test_every_listed_ground_module_exists():
    assert GROUND <= set(imports()), sorted(GROUND - set(imports()))


def test_stage_modules_import_only_the_ground():
    graph = imports()
    crossing = sorted(f"{m} -> {d}" for m, deps in graph.items() if m not in GROUND for d in deps - GROUND)
    assert not crossing, f"stage modules import other stages: {crossing}; move the shared piece into the ground"


def test_the_ground_imports_no_stage():
    graph = imports()
    upward = sorted(f"{m} -> {d}" for m in GROUND for d in graph[m] - GROUND)
    assert not upward, upward


def test_no_import_cycle():
    graph = imports()
    state: dict[str, int] = {}  # 1 on the current path, 2 done

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for dep in sorted(graph[node]):
            assert state.get(dep) != 1, f"import cycle: {' -> '.join(path[path.index(dep):] + [dep])}"
            if dep not in state:
                visit(dep, path + [dep])
        state[node] = 2

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])


def test_the_check_sees_a_crossing_import(tmp_path, monkeypatch):
    """The parser finds relative, absolute and function-level imports alike."""
    pkg = tmp_path / "ganflow"
    pkg.mkdir()
    (pkg / "a.py").write_text("from . import b\nfrom ganflow.c import x\ndef f():\n    import ganflow.d\n")
    for name in "bcd":
        (pkg / f"{name}.py").write_text("")
    monkeypatch.setattr(sys.modules[__name__], "PACKAGE", pkg)
    assert imports()["a"] == {"b", "c", "d"}

"""The import contract (DESIGN.md section 2), checked over the AST of every .py file of the repository.

Every import counts, function-level ones too; only imports under ``if TYPE_CHECKING:`` (annotations, never
run) are skipped. The contract is the data below: which group a module belongs to (:data:`GROUPS`) and which
groups each group may import (:data:`ALLOWED`). On top of it: no import cycle between library modules, none
between groups, and neither Lightning nor checkpoint/download I/O in ``specvqgan.modules`` (pure nn.Modules).

The library (``specvqgan``) is layered bottom-up: ``core`` (config, audio, shapes, checkpoint I/O, files,
...), ``modules`` (pure networks), ``losses``, ``sampling``, ``models`` (LightningModules), ``data``, the
``runners`` (training, the dataset sampler). ``feature_extraction``, ``vocoder`` and ``evaluation`` consume
the library and not each other. The composition root (``app``: the video-to-sound pipeline and the few
application modules that drive extraction and vocoding) is the only part of ``specvqgan`` that may import
them. Nothing but the CLIs (``train.py``, ``evaluate.py``, ``scripts/``) and ``tests`` sits above.
A new module lands in the group of its longest listed prefix (``specvqgan.<new>`` is ``core``); if it
needs more, give it a group here on purpose.
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]

# ---- the contract ---------------------------------------------------------------------------------------
#: module-name prefix -> group (the longest matching prefix wins)
GROUPS = {
    "specvqgan": "core",
    "specvqgan.modules": "modules",
    "specvqgan.losses": "losses",
    "specvqgan.sampling": "sampling",
    "specvqgan.models": "models",
    "specvqgan.data": "data",
    "specvqgan.training": "runners",
    "specvqgan.dataset_sampling": "runners",
    "specvqgan.pipeline": "app",
    "specvqgan.export": "app",
    "specvqgan.outputs": "app",
    "specvqgan.video_condition": "app",
    "specvqgan.codec": "app",
    "specvqgan.export": "app",
    "specvqgan.av_benchmark": "app",
    "specvqgan.own_data": "app",
    "feature_extraction": "feature_extraction",
    "vocoder": "vocoder",
    "evaluation": "evaluation",
    "train": "cli",
    "evaluate": "cli",
    "scripts": "cli",
    "tests": "tests",
    "conftest": "tests",
}
_LIBRARY = {"core", "modules", "losses", "sampling", "models", "data", "runners", "app"}
#: group -> the other groups it may import
ALLOWED = {
    "core": set(),
    "modules": {"core"},
    "losses": {"core", "modules"},
    "sampling": {"core", "modules"},
    "models": {"core", "modules", "losses", "sampling"},
    "data": {"core"},
    "runners": {"core", "modules", "sampling", "models", "data"},
    "feature_extraction": {"core", "modules"},
    "vocoder": {"core", "modules", "losses", "models"},
    "evaluation": {"core", "modules", "models", "data"},
    "app": {"core", "modules", "sampling", "models", "data", "feature_extraction", "vocoder"},
    "cli": _LIBRARY | {"feature_extraction", "vocoder", "evaluation"},
    "tests": _LIBRARY | {"feature_extraction", "vocoder", "evaluation", "cli"},
}
#: group -> packages / modules it must not import although its allowed groups hold them
FORBIDDEN = {"modules": {"pytorch_lightning", "lightning", "specvqgan.checkpoint", "specvqgan.download"}}
#: groups whose modules must form no import cycle (the library and its consumers)
ACYCLIC = _LIBRARY | {"feature_extraction", "vocoder", "evaluation"}
SCANNED = ("specvqgan", "feature_extraction", "vocoder", "evaluation", "scripts", "tests", "train.py",
           "evaluate.py")


# ---- the checker ----------------------------------------------------------------------------------------
def group_of(module: str) -> str | None:
    parts = module.split(".")
    for n in range(len(parts), 0, -1):
        if ".".join(parts[:n]) in GROUPS:
            return GROUPS[".".join(parts[:n])]
    return None


def find_modules(root: Path) -> dict[str, Path]:
    """{dotted module name: file} for every .py file under the :data:`SCANNED` paths of ``root``."""
    mods = {}
    for top in SCANNED:
        path = root / top
        files = [path] if path.is_file() else sorted(path.rglob("*.py")) if path.is_dir() else []
        for f in files:
            parts = list(f.relative_to(root).with_suffix("").parts)
            mods[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = f
    return mods


def _runtime_imports(tree: ast.AST):
    """Import nodes anywhere in ``tree`` (functions included) except under ``if TYPE_CHECKING:``."""
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            yield from (n for child in node.orelse for n in _runtime_imports(ast.Module([child], [])))
            continue
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node
        yield from _runtime_imports(node)


def import_edges(root: Path) -> tuple[dict[str, Path], list[tuple[str, str, int]]]:
    """(modules, [(importer, imported, line)]): imported is a module of ``root`` (the deepest one the
    import names) or, for third-party imports, ``'<external>.<top-level package>'``."""
    mods = find_modules(root)

    def resolve(name: str) -> str:
        parts = name.split(".")
        for n in range(len(parts), 0, -1):
            if ".".join(parts[:n]) in mods:
                return ".".join(parts[:n])
        return f"<external>.{parts[0]}"

    edges = []
    for mod, f in mods.items():
        package = mod.split(".") if f.name == "__init__.py" else mod.split(".")[:-1]
        for node in _runtime_imports(ast.parse(f.read_text(), str(f))):
            if isinstance(node, ast.Import):
                targets = [resolve(a.name) for a in node.names]
            else:
                base = node.module or ""
                if node.level:
                    base = ".".join(package[:len(package) - node.level + 1] + ([base] if base else []))
                targets = [resolve(f"{base}.{a.name}") for a in node.names]
            edges += [(mod, t, node.lineno) for t in dict.fromkeys(targets) if t != mod]
    return mods, edges


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one node (Tarjan, iterative)."""
    index, low, stack, on, out, counter = {}, {}, [], set(), [], [0]
    for start in sorted(graph):
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = counter[0]; counter[0] += 1; stack.append(start); on.add(start)  # noqa: E702
        while work:
            v, it = work[-1]
            w = next(it, None)
            if w is not None:
                if w not in index:
                    index[w] = low[w] = counter[0]; counter[0] += 1; stack.append(w); on.add(w)  # noqa: E702
                    work.append((w, iter(sorted(graph.get(w, ())))))
                elif w in on:
                    low[v] = min(low[v], index[w])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[v])
            if low[v] == index[v]:
                comp = []
                while True:
                    w = stack.pop(); on.discard(w); comp.append(w)  # noqa: E702
                    if w == v:
                        break
                if len(comp) > 1:
                    out.append(sorted(comp))
    return out


def violations(root: Path) -> list[str]:
    """Every breach of the contract in the tree at ``root``, one line each (empty: the tree keeps it)."""
    mods, edges = import_edges(root)
    found = [f"{m} ({mods[m]}): no group in GROUPS" for m in mods if group_of(m) not in ALLOWED]
    mod_graph, group_graph = {m: set() for m in mods}, {}
    for src, dst, line in edges:
        gs = group_of(src)
        where = f"{mods[src].relative_to(root)}:{line}"
        name = dst.removeprefix("<external>.")
        if any(name == f or name.startswith(f + ".") for f in FORBIDDEN.get(gs, ())):
            found.append(f"{where}: {src} ({gs}) imports {name}, forbidden in {gs}")
        if dst.startswith("<external>."):
            continue
        gd = group_of(dst)
        if gs != gd and gd not in ALLOWED.get(gs, ()):
            found.append(f"{where}: {src} ({gs}) imports {dst} ({gd}); {gs} may import {sorted(ALLOWED.get(gs, ()))}")
        if gs in ACYCLIC and gd in ACYCLIC:
            mod_graph[src].add(dst)
            if gs != gd:
                group_graph.setdefault(gs, set()).add(gd)
                group_graph.setdefault(gd, set())
    found += [f"import cycle between modules: {' <-> '.join(c)}" for c in _cycles(mod_graph)]
    found += [f"import cycle between groups: {' <-> '.join(c)}" for c in _cycles(group_graph)]
    return found


# ---- the tests -----------------------------------------------------------------------------------------
def test_the_contract_table_is_layered():
    """ALLOWED is itself acyclic, names only known groups, and no library group may import a CLI or tests."""
    assert set(GROUPS.values()) == set(ALLOWED)
    assert all(deps <= set(ALLOWED) for deps in ALLOWED.values())
    assert not _cycles({g: deps - {g} for g, deps in ALLOWED.items()})
    for g in ACYCLIC:
        assert not ALLOWED[g] & {"cli", "tests"}, g


def test_the_repository_keeps_the_contract():
    mods, edges = import_edges(ROOT)
    assert {"specvqgan.pipeline", "specvqgan.modules.visual.resnet50", "evaluation.features"} <= set(mods)
    assert len(edges) > 500    # function-level imports are seen too
    assert violations(ROOT) == []


def _write(root: Path, files: dict[str, str]) -> None:
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)


def test_the_checker_flags_a_violating_tree(tmp_path):
    """A synthetic tree with one breach of each kind: every one is reported, the allowed imports are not."""
    _write(tmp_path, {
        "specvqgan/__init__.py": "",
        "specvqgan/config.py": "import numpy\n",
        "specvqgan/modules/__init__.py": "",
        "specvqgan/modules/net.py": "from specvqgan import config\ndef f():\n    from ..models import m\n"
                                    "import pytorch_lightning\nfrom specvqgan.checkpoint import read\n",
        "specvqgan/checkpoint.py": "",
        "specvqgan/models/__init__.py": "",
        "specvqgan/models/m.py": "from specvqgan.modules.net import f\n",
        "specvqgan/a.py": "def g():\n    import scripts.tool\n    from specvqgan import b\n",
        "specvqgan/b.py": "from specvqgan.a import g\n",
        "specvqgan/pipeline.py": "import vocoder.inference\nfrom specvqgan.outputs import w\n",
        "specvqgan/outputs.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from specvqgan.pipeline import x\n",
        "vocoder/__init__.py": "", "vocoder/inference.py": "from feature_extraction import extract\n",
        "feature_extraction/__init__.py": "", "feature_extraction/extract.py": "import specvqgan.config\n",
        "scripts/tool.py": "import specvqgan.pipeline\n",
    })
    found = violations(tmp_path)
    expected = [
        "specvqgan.modules.net (modules) imports specvqgan.models.m (models)",     # relative, in a function
        "specvqgan.modules.net (modules) imports pytorch_lightning",
        "specvqgan.modules.net (modules) imports specvqgan.checkpoint, forbidden",
        "specvqgan.a (core) imports scripts.tool (cli)",
        "vocoder.inference (vocoder) imports feature_extraction.extract (feature_extraction)",
        "import cycle between modules: specvqgan.a <-> specvqgan.b",
        "import cycle between modules: specvqgan.models.m <-> specvqgan.modules.net",
        "import cycle between groups: models <-> modules",
    ]
    for line in expected:
        assert sum(line in f for f in found) == 1, (line, found)
    assert len(found) == len(expected), found    # the app's vocoder import and TYPE_CHECKING are fine


@pytest.mark.parametrize("module, group", [("specvqgan.new_thing", "core"), ("specvqgan.models.loading", "models"),
                                           ("specvqgan.pipeline", "app"), ("scripts.generate", "cli"),
                                           ("numpy", None)])
def test_groups_by_longest_prefix(module, group):
    assert group_of(module) == group

"""The code's shape: no import circle between any two files of the project (imports inside functions
count too: a lazy import hides a circle, it does not remove it), the model backends do not import
training scripts, and only backends/ knows which model family it holds (docs/design.md §1)."""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ["backends", "erasure", "sensitivity", "evaluation", "jobs", "ui", "shapesworld", "emojiworld", "benchmarks"]
TRAINING_SCRIPTS = {f"{world}.{f.stem}" for world in ("shapesworld", "emojiworld")
                    for f in (ROOT / world).glob("train_*.py")}


def _modules() -> dict[str, Path]:
    found = {}
    for package in PACKAGES:
        for f in sorted((ROOT / package).rglob("*.py")):  # sub-packages too (erasure.methods)
            parts = f.relative_to(ROOT).with_suffix("").parts
            found[".".join(parts[:-1] if f.stem == "__init__" else parts)] = f
    found["app"] = ROOT / "app.py"
    return found


def _imports(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """Project files that `name` imports anywhere in its body (package __init__ files excluded)."""
    package = name if path.stem == "__init__" else name.rpartition(".")[0]
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(parts + ([node.module] if node.module else []))
            targets = [base] + [f"{base}.{a.name}" for a in node.names]
        elif isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        else:
            continue
        out |= {t for t in targets if t in modules and t != name and modules[t].stem != "__init__"}
    return out


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one file (Tarjan)."""
    index, low, stack, on, out, counter = {}, {}, [], set(), [], [0]

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
                out.append(sorted(component))

    for v in graph:
        if v not in index:
            visit(v)
    return out


def test_no_import_circles_between_files():
    modules = _modules()
    graph = {name: _imports(name, path, modules) for name, path in modules.items()}
    assert graph["sensitivity.spectrum"] and graph["backends.loader"]  # the parser sees imports at all
    assert _cycles(graph) == []


def test_the_cycle_finder_finds_a_circle():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_backends_import_no_training_script():
    modules = _modules()
    for name, path in modules.items():
        if name.startswith("backends"):
            assert not (_imports(name, path, modules) & TRAINING_SCRIPTS), name


def test_sensitivity_uses_only_the_public_erasure_api():
    """sensitivity/ imports `erasure` (its package API) and nothing from erasure's own modules."""
    for path in (ROOT / "sensitivity").glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("erasure."):
                raise AssertionError(f"{path.name} imports {node.module}")
            if isinstance(node, ast.Import):
                assert not any(a.name.startswith("erasure.") for a in node.names), path.name


DENOISER_ATTRIBUTES = {"unet", "transformer"}  # a pipeline's denoiser: reach it through its family
FAMILY_NAMES = {"sd", "sdxl", "flux"}
FAMILY_PROBES = {"is_flux", "is_flow_matching", "is_sdxl"}


def _family_branches(source: str) -> list[str]:
    """Every place that reaches a pipeline's denoiser by attribute, probes a family by a helper, or
    compares a value with a family's name (each a branch a new family would have to edit)."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Attribute) and node.attr in DENOISER_ATTRIBUTES:
            found.append(f"line {node.lineno}: .{node.attr}")
        elif isinstance(node, (ast.Name, ast.Attribute)) and getattr(node, "id", getattr(node, "attr", "")) in FAMILY_PROBES:
            found.append(f"line {node.lineno}: {getattr(node, 'id', getattr(node, 'attr', ''))}")
        elif isinstance(node, ast.Compare):
            constants = [c.value for c in [node.left, *node.comparators] if isinstance(c, ast.Constant)]
            found += [f"line {node.lineno}: == {c!r}" for c in constants if c in FAMILY_NAMES]
    return found


def test_only_backends_branch_on_the_model_family():
    offenders = {}
    for name, path in _modules().items():
        if not name.startswith(("backends", "shapesworld", "emojiworld")):  # the worlds train their UNets themselves
            if found := _family_branches(path.read_text()):
                offenders[name] = found
    assert offenders == {}


def test_the_family_branch_finder_finds_branches():
    snippet = "net = pipe.unet\nif is_flux(pipe): pass\nif family.name == 'sdxl': pass\nx = pipe.transformer.config"
    assert len(_family_branches(snippet)) == 4
    assert _family_branches("net = family.denoiser(pipe)\nif kind == 'weights': pass") == []


# the files inside a run, spectrum and job folder, and the one module that may name each (docs/design.md §3)
FOLDER_FILES = {
    "erasure/runs.py": ("config.json", "status.json", "events.jsonl", "result.safetensors", "search.json",
                        "trajectory", "checkpoints"),
    "sensitivity/results.py": ("spectrum.csv", "spectrum.parquet", "config.json", "figures", "erasure"),
    "jobs/store.py": ("job.json", "state.json", "error.txt", "run", "spectrum", "erasure"),
}
# the modules that open those folders; erasure/state.py writes a checkpoint's own files (its state.json)
FOLDER_USERS = ("ui", "jobs", "sensitivity", "erasure", "evaluation")
OTHER_FOLDERS = {"evaluation/errors.py": {"checkpoints"}}  # torch hub's own checkpoints folder


def _named_files(path: Path, names: set[str]) -> set[str]:
    """String constants of a module that are one of `names` or a path under one ("trajectory/step_...")."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            found |= {n for n in names if node.value == n or node.value.startswith(n + "/")}
    return found


def test_only_a_folders_own_class_names_the_files_inside_it():
    """RunFolder, SpectrumFolder and JobFolder own their file names (and the state those files hold): the UI,
    the jobs and the libraries ask them (`finished`, `record_or_empty`, `search`, `csv`), never the disk."""
    names = {n for files in FOLDER_FILES.values() for n in files} - {"run", "spectrum", "erasure", "figures"}
    paths = [ROOT / "app.py"] + [f for package in FOLDER_USERS for f in sorted((ROOT / package).rglob("*.py"))]
    offenders = {}
    for path in paths:
        rel = str(path.relative_to(ROOT))
        if rel in FOLDER_FILES or rel == "erasure/state.py":
            continue
        found = _named_files(path, names) - OTHER_FOLDERS.get(rel, set())
        if found:
            offenders[rel] = sorted(found)
    assert offenders == {}


# The floors, bottom up (docs/design.md §1): a module imports only from its own floor or the ones below.
# A world's data (the renderer, captions, tokenizer, architectures, classifier) is the ground floor; its
# training, evaluation and model-card scripts are tools on the top floor beside the benchmarks.
WORLD_TOOLS = {"training", "evaluate", "model_card", "eval_kept", "export"}
FLOORS = ["world", "backends", "erasure", "evaluation", "sensitivity", "jobs", "ui", "tools"]


def floor_of(module: str) -> str:
    package, _, stem = module.partition(".")
    if package in ("shapesworld", "emojiworld"):
        return "tools" if stem.startswith("train_") or stem in WORLD_TOOLS else "world"
    return {"app": "ui", "benchmarks": "tools"}.get(package, package)


def upward_imports(graph: dict[str, set[str]]) -> list[str]:
    rank = {f: i for i, f in enumerate(FLOORS)}
    return sorted(f"{a} ({floor_of(a)}) imports {b} ({floor_of(b)})" for a, targets in graph.items()
                  for b in targets if rank[floor_of(b)] > rank[floor_of(a)])


def test_no_module_imports_from_a_floor_above_its_own():
    modules = _modules()
    assert {floor_of(m) for m in modules} == set(FLOORS)  # every floor has modules; none is unnamed
    graph = {name: _imports(name, path, modules) for name, path in modules.items()}
    assert upward_imports(graph) == []


def test_the_floor_check_finds_an_upward_import():
    graph = {"backends.generate": {"erasure.events"}, "ui.state": {"jobs.manager"}, "shapesworld.world": set(),
             "shapesworld.train_unet": {"backends.loader"}, "shapesworld.captions": {"shapesworld.training"}}
    assert upward_imports(graph) == ["backends.generate (backends) imports erasure.events (erasure)",
                                     "shapesworld.captions (world) imports shapesworld.training (tools)"]

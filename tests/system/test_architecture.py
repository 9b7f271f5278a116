"""The house plan, checked from the source: no import circle among installation/, models/,
hardware/, scenes/; models/ and hardware/ take from installation/ only the ground floor; and the
size of the largest class and function in every package (reported, and bounded); the wings'
top floors stay small and tests/ mirrors the packages."""
from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("installation", "models", "hardware", "scenes")
GROUND_FLOOR = {"installation", "installation.records", "installation.clock", "installation.mailbox",
                "installation.errors"}
MAX_CLASS_LINES = 300
MAX_FUNCTION_LINES = 80


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def sources() -> dict[str, Path]:
    return {module_name(p): p for package in PACKAGES for p in (ROOT / package).rglob("*.py")}


def imports(path: Path, name: str, known: set[str]) -> set[str]:
    """Project modules `path` imports anywhere in it (function-level imports included)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package.split(".")[:len(package.split(".")) - node.level + 1] + ([base] if base else []))
            targets = [base] + [f"{base}.{alias.name}" for alias in node.names]
        else:
            continue
        for target in targets:
            while target and target not in known:
                target = target.rpartition(".")[0]
            if target and target != name:
                found.add(target)
    return found


def import_graph() -> dict[str, set[str]]:
    modules = sources()
    known = set(modules)
    graph = {name: imports(path, name, known) for name, path in modules.items()}
    # cli imports the command modules by name (importlib), which the syntax tree does not show
    from installation.commands import MODULES
    graph["installation.cli"] |= {f"installation.commands.{m}" for m in MODULES}
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_no_import_cycle():
    graph = import_graph()
    # a wing's __init__ names its door (imports from its own modules): a module's edge to a package above
    # it is that package's door, not a circle
    graph = {n: {m for m in deps if not n.startswith(m + ".")} for n, deps in graph.items()}
    assert find_cycle(graph) is None, " -> ".join(find_cycle(graph) or [])


def test_models_and_hardware_take_only_the_ground_floor_from_installation():
    wrong = {f"{name} -> {dep}" for name, deps in import_graph().items()
             if name.split(".")[0] in ("models", "hardware", "scenes")
             for dep in deps if dep.split(".")[0] == "installation" and dep not in GROUND_FLOOR}
    assert not wrong, sorted(wrong)


def sizes(kind) -> list[tuple[int, str]]:
    found = []
    for path in (p for package in PACKAGES for p in (ROOT / package).rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, kind):
                found.append((node.end_lineno - node.lineno + 1, f"{path.relative_to(ROOT)}:{node.name}"))
    return sorted(found, reverse=True)


def test_no_class_over_300_lines_and_no_function_over_80_in_the_product():
    classes, functions = sizes(ast.ClassDef), sizes((ast.FunctionDef, ast.AsyncFunctionDef))
    print(f"largest class: {classes[0][1]} ({classes[0][0]} lines); "
          f"largest function: {functions[0][1]} ({functions[0][0]} lines)")
    over = [f"{name} ({lines} lines)" for lines, name in classes if lines > MAX_CLASS_LINES] + [
        f"{name} ({lines} lines)" for lines, name in functions if lines > MAX_FUNCTION_LINES]
    print("over the bound:", over)
    assert not over, over
    app_lines = len((ROOT / "installation" / "app.py").read_text(encoding="utf-8").splitlines())
    assert app_lines <= 300, f"installation/app.py has {app_lines} lines; the composition root stays <= 300"


MAX_TOP_LEVEL_MODULES = {"models": 4, "hardware": 11, "installation": 22}
TEST_FOLDERS = {"models", "hardware", "installation", "system", "tools"}


def test_wings_keep_their_top_floor_small():
    """Modules sit in capability folders (models/listening, hardware/osc, installation/operators, ...)."""
    counts = {package: sorted(p.name for p in (ROOT / package).glob("*.py") if p.name != "__init__.py")
              for package in MAX_TOP_LEVEL_MODULES}
    over = {package: names for package, names in counts.items() if len(names) > MAX_TOP_LEVEL_MODULES[package]}
    assert not over, over


def test_tests_mirror_the_packages():
    """Every test module lives in the folder of what it tests; the root keeps the shared fixtures and fakes."""
    misplaced = [str(p.relative_to(ROOT)) for p in (ROOT / "tests").rglob("test_*.py")
                 if p.parent.name not in TEST_FOLDERS or p.parent.parent != ROOT / "tests"]
    assert not misplaced, misplaced
    root_files = sorted(p.name for p in (ROOT / "tests").iterdir() if p.is_file())
    assert len(root_files) <= 8, root_files


def test_no_second_copy_of_config_defaults_in_models_or_hardware():
    """Settings come typed through the door; `getattr(cfg, "key", default)` would keep a second default."""
    config_like = ("cfg", "config", "settings", "section", "conf")
    model_configs = ("unet", "vae", "controlnet", "scheduler")  # a loaded network's own config (diffusers)
    found = []
    for path in (p for package in ("models", "hardware") for p in (ROOT / package).rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "getattr" \
                    and len(node.args) == 3:
                source = ast.unparse(node.args[0]).lower()
                target = source.rsplit(".", 1)[-1]
                if any(word in target for word in config_like) and not any(m in source for m in model_configs):
                    found.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert not found, found

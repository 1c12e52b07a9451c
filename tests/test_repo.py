"""Repository hygiene: one source of truth for dependencies, documented dependencies,
notebooks stored without outputs and parameterised."""

import json

from conftest import ROOT

from puzzle_core.envfile import read_requirements, render


def test_environment_yml_generated_from_requirements():
    reqs = read_requirements(ROOT / "requirements.txt")
    assert len(reqs) >= 10
    assert (ROOT / "environment.yml").read_text() == render(reqs), (
        "environment.yml is stale: run `make env`"
    )


def test_every_requirement_is_explained_in_the_readme():
    readme = (ROOT / "README.md").read_text().lower()
    for name, _, why in read_requirements(ROOT / "requirements.txt"):
        assert why, f"requirements.txt: {name} has no reason"
        assert f"`{name.lower()}`" in readme, f"README does not explain {name}"


def test_notebooks_stored_clean_and_parameterised():
    notebooks = sorted((ROOT / "notebooks").glob("*.ipynb"))
    assert notebooks
    for path in notebooks:
        nb = json.loads(path.read_text())
        assert nb["metadata"].get("kernelspec", {}).get("language") == "python", path
        tagged = [c for c in nb["cells"] if "parameters" in c.get("metadata", {}).get("tags", [])]
        assert len(tagged) == 1, f"{path.name}: needs exactly one cell tagged 'parameters'"
        for cell in nb["cells"]:
            if cell["cell_type"] == "code":
                assert cell.get("outputs") == [] and cell.get("execution_count") is None, path


def test_makefile_targets():
    text = (ROOT / "Makefile").read_text()
    for target in ("test:", "lab:", "bench:", "lint:", "reproduce:"):
        assert f"\n{target}" in text


def test_every_notebook_is_in_the_reproduction_pipeline():
    from puzzle_core.reproduce import NOTEBOOKS

    stored = {p.stem for p in (ROOT / "notebooks").glob("*.ipynb")}
    assert stored == set(NOTEBOOKS)


def test_code_and_notebooks_pass_ruff():
    """The notebooks are the source of their code (edited in JupyterLab): ruff reads them too."""
    import subprocess
    import sys
    from pathlib import Path

    ruff = Path(sys.executable).with_name("ruff")
    where = ["puzzle_core", "tests", "notebooks"]
    for args in (["check", "--no-cache"], ["format", "--check", "--no-cache"]):
        proc = subprocess.run([str(ruff), *args, *where], cwd=ROOT, capture_output=True, text=True)
        assert proc.returncode == 0, proc.stdout + proc.stderr


def _imports_of(path, package):
    """Modules of ``puzzle_core`` that ``path`` imports (module level and inside functions)."""
    import ast

    tree = ast.parse(path.read_text())
    here = list(path.relative_to(ROOT).with_suffix("").parts[:-1])  # the module's package
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = here[: len(here) - node.level + 1]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            names = [mod] + [f"{mod}.{a.name}" for a in node.names]
        elif isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        else:
            continue
        out |= {n for n in names if n.startswith(package) and n in MODULES}
    return out


MODULES: set[str] = set()


def test_no_import_cycles_between_modules():
    """The pipeline's layers import downward only: no circle, lazy imports included."""
    import graphlib

    files = {
        ".".join(p.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__"): p
        for p in (ROOT / "puzzle_core").rglob("*.py")
    }
    MODULES.clear()
    MODULES.update(files)
    graph = {m: _imports_of(p, "puzzle_core") - {m} for m, p in files.items()}
    # a package imports its own modules (re-exports): not a circle of the pipeline
    graph = {m: {d for d in deps if not d.startswith(m + ".")} for m, deps in graph.items()}
    graphlib.TopologicalSorter(graph).static_order()  # raises CycleError naming the circle

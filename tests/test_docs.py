"""The documentation site: it builds with ``mkdocs build --strict`` (a broken link or a missing page fails), and
every public name (each ``__all__`` of the package) has a docstring and is rendered in the API reference."""
from __future__ import annotations

import importlib
import inspect
import os
import pkgutil
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import dynrep

ROOT = Path(__file__).resolve().parents[1]
MKDOCS = Path(sys.executable).with_name("mkdocs")


def public_modules() -> list:
    """dynrep and every module of it that declares ``__all__``."""
    modules = [dynrep]
    for info in pkgutil.walk_packages(dynrep.__path__, "dynrep."):
        if info.name == "dynrep.__main__":  # runs the command
            continue
        module = importlib.import_module(info.name)
        if hasattr(module, "__all__"):
            modules.append(module)
    return modules


PUBLIC = [(module.__name__, name) for module in public_modules() for name in module.__all__]


def defining_module(module, name: str) -> str:
    """Where ``module.name`` is defined: a module itself, a class's or function's own module, data a package
    re-exports: the submodule whose ``__all__`` holds the same object, else (data) ``module``."""
    obj = getattr(module, name)
    if inspect.ismodule(obj):
        return obj.__name__
    if inspect.isclass(obj) or inspect.isroutine(obj):
        return obj.__module__
    owners = [sub for sub, value in sorted(sys.modules.items()) if sub.startswith(f"{module.__name__}.") and
              name in getattr(value, "__all__", ()) and getattr(value, name, None) is obj]
    return owners[0] if owners else module.__name__


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    """The site built strictly from a copy of docs/ whose tutorials are the repository's notebooks (stored
    without outputs; scripts/docs.sh renders executed copies instead). Returns the site directory."""
    tmp = tmp_path_factory.mktemp("docs")
    docs = tmp / "docs"
    shutil.copytree(ROOT / "docs", docs, ignore=shutil.ignore_patterns("tutorials"))
    (docs / "tutorials").mkdir()
    for notebook in sorted((ROOT / "notebooks").glob("*.ipynb")):
        shutil.copy(notebook, docs / "tutorials" / notebook.name)
    config = (ROOT / "mkdocs.yml").read_text()
    for old, new in (("docs_dir: docs", f"docs_dir: {docs}"), ("- docs/hooks/", f"- {docs}/hooks/"),
                     ("paths: [.]", f"paths: [{ROOT}]")):
        assert old in config, old
        config = config.replace(old, new)
    (tmp / "mkdocs.yml").write_text(config)
    out = tmp / "site"
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1", "PYTHONPATH": str(ROOT)}
    result = subprocess.run([str(MKDOCS), "build", "--strict", "-f", str(tmp / "mkdocs.yml"), "-d", str(out)],
                            cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
    return out


def test_build_renders_every_page_and_notebook(site):
    config = (ROOT / "mkdocs.yml").read_text()
    pages = re.findall(r"^\s*-\s+(?:[^:\n]+:\s+)?([\w/-]+)\.md\s*$", config, flags=re.M)
    assert len(pages) > 40
    for page in pages:
        html = site / ("index.html" if page == "index" else f"{page.removesuffix('/index')}/index.html")
        assert html.is_file(), page
    for notebook in (ROOT / "notebooks").glob("*.ipynb"):
        assert (site / "tutorials" / notebook.stem / "index.html").is_file(), notebook.name
        assert f'href="tutorials/{notebook.stem}/"' in (site / "index.html").read_text(), "not in the nav"
        assert f'href="{notebook.stem}/"' in (site / "tutorials" / "index.html").read_text(), "not in the index"


def test_a_page_per_world_model_and_metric():
    config = (ROOT / "mkdocs.yml").read_text()
    for kind, names in (("worlds", dynrep.list_envs()), ("models", dynrep.list_models())):
        for name in names:
            assert (ROOT / "docs" / kind / f"{name}.md").is_file() and f"{kind}/{name}.md" in config, name
    page = (ROOT / "docs" / "metrics.md").read_text()
    for name in dynrep.metrics.list_metrics():
        assert f"`{name}`" in page, name


#: Pages whose Python blocks run offline (no downloaded data, no GPU), in order (resume before anything reusing
#: its run directory).
RUNNABLE_PAGES = ("quickstart", "concepts/environment", "concepts/models", "concepts/metrics", "concepts/learner",
                  "models/index", "worlds/gridworld", "worlds/circles", "worlds/pendulum", "howto/add-world",
                  "howto/add-model", "howto/add-metric", "howto/train-from-config", "howto/resume")

_RUN_PAGES = r"""
import os, re, sys, textwrap, traceback
failed = []
for page in sys.argv[2:]:
    text = open(os.path.join(sys.argv[1], page + ".md")).read()
    code = "\n".join(textwrap.dedent(block) for block in re.findall(r"```python\n(.*?)```", text, re.S))
    code = re.sub(r'(steps=|"steps": )\d+', r"\g<1>3", code)  # tiny settings
    try:
        exec(compile(code, page + ".md", "exec"), {"__name__": "__main__"})
    except Exception:
        failed.append(page + ":\n" + traceback.format_exc())
print("\n".join(failed))
sys.exit(1 if failed else 0)
"""


def test_page_code_runs(tmp_path):
    """The Python blocks of the pages a reader copies from run, with 3 training steps, in a fresh process."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "MPLBACKEND": "Agg"}
    result = subprocess.run([sys.executable, "-c", _RUN_PAGES, str(ROOT / "docs"), *RUNNABLE_PAGES], cwd=tmp_path,
                            env=env, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stdout + result.stderr[-3000:]


@pytest.mark.parametrize("module_name, name", PUBLIC, ids=[f"{m}.{n}" for m, n in PUBLIC])
def test_public_name_documented(module_name, name, site):
    module = importlib.import_module(module_name)
    obj = getattr(module, name)
    where = defining_module(module, name)
    if inspect.ismodule(obj) or inspect.isclass(obj) or inspect.isroutine(obj):
        doc = obj.__doc__ if not inspect.isclass(obj) else vars(obj).get("__doc__")
        assert doc and doc.strip(), f"{module_name}.{name} has no docstring"
        path = obj.__name__ if inspect.ismodule(obj) else f"{obj.__module__}.{obj.__qualname__}"
    elif name == "__version__":
        assert "`__version__`" in (ROOT / "docs" / "api" / "dynrep.md").read_text()
        return
    else:  # data: a ``#:`` comment above its assignment (rendered with its value)
        source = inspect.getsource(importlib.import_module(where))
        assert re.search(rf"^#:.*\n{name}\s*[:=]", source, flags=re.M), f"{module_name}.{name} has no #: comment"
        path = f"{where}.{name}"
    rendered = "".join(page.read_text() for page in (site / "api").rglob("*.html"))
    assert f'id="{path}"' in rendered, f"{module_name}.{name} ({path}) is not in the API reference"

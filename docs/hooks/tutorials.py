"""mkdocs hook: the Tutorials section lists every notebook that scripts/docs.sh put in docs/tutorials/.

New notebooks need no edit of mkdocs.yml: the ones named in ORDER come first, in that order, the rest after
them by file name. The same list, with each notebook's title (its first ``# `` heading), ends tutorials.md.
"""
from __future__ import annotations

import json
from pathlib import Path

ORDER = ("introduction", "representation-learning", "metrics", "nonlinear-ica", "causal", "symmetries",
         "combinatorial-generalisation")


def _rank(path: Path) -> tuple[int, str]:
    return (ORDER.index(path.stem) if path.stem in ORDER else len(ORDER), path.name)


def _notebooks(docs_dir: str) -> list[Path]:
    return sorted((Path(docs_dir) / "tutorials").glob("*.ipynb"), key=_rank)


def _title(path: Path) -> str:
    for cell in json.loads(path.read_text())["cells"]:
        for line in "".join(cell["source"]).splitlines() if cell["cell_type"] == "markdown" else ():
            if line.startswith("# "):
                return line[2:].strip()
    return path.stem


def on_config(config):
    notebooks = _notebooks(config["docs_dir"])
    for section in config["nav"]:
        if isinstance(section, dict) and "Tutorials" in section:
            index = [entry for entry in section["Tutorials"] if entry == "tutorials.md"]
            section["Tutorials"] = index + [f"tutorials/{path.name}" for path in notebooks]
    return config


def on_page_markdown(markdown, page, config, files):
    if page.file.src_uri != "tutorials.md":
        return markdown
    rows = [f"| [{_title(path)}](tutorials/{path.name}) | `notebooks/{path.name}` |"
            for path in _notebooks(config["docs_dir"])]
    if not rows:
        return markdown + "\n*No notebook was rendered in this build.*\n"
    return markdown + "\n| tutorial | notebook |\n|---|---|\n" + "\n".join(rows) + "\n"

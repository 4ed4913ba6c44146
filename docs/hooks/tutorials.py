"""mkdocs hook: the Tutorials section lists every notebook that scripts/docs.sh put in docs/tutorials/.

New notebooks need no edit of mkdocs.yml: the ones named in ORDER come first, in that order, the rest after
them by file name.
"""
from __future__ import annotations

from pathlib import Path

ORDER = ("introduction", "representation-learning", "metrics", "nonlinear-ica", "causal", "symmetries",
         "combinatorial-generalisation")


def _rank(path: Path) -> tuple[int, str]:
    return (ORDER.index(path.stem) if path.stem in ORDER else len(ORDER), path.name)


def on_config(config):
    notebooks = sorted((Path(config["docs_dir"]) / "tutorials").glob("*.ipynb"), key=_rank)
    for section in config["nav"]:
        if isinstance(section, dict) and "Tutorials" in section:
            index = [entry for entry in section["Tutorials"] if entry == "tutorials.md"]
            section["Tutorials"] = index + [f"tutorials/{path.name}" for path in notebooks]
    return config

"""Packaged run configs: each seed paper's main experiment at the paper's settings, and a ``-small`` twin.

Every preset is a YAML run config (:class:`~dynrep.runs.RunConfig`) shipped inside the package, whose
comment block names the paper, what it reproduces and where each setting comes from; its first comment
line is the one-line description :func:`describe_presets` gives. The ``-small`` twin of a preset trains
the same model on the same world in minutes on a laptop CPU (fewer steps, smaller batches and networks).

``"preset:NAME"`` is accepted wherever a run-config path is (:func:`dynrep.runs.load_run_config`)::

    dynrep presets                                   # name and description, one line each
    dynrep presets --show quessard-flatland > run.yaml
    dynrep train preset:quessard-flatland-small trainer.seed=1 --out runs/flatland
"""
from __future__ import annotations

import difflib
from importlib import resources
from pathlib import Path

__all__ = ["PRESET_PREFIX", "describe_presets", "list_presets", "load_preset", "preset_path", "preset_text"]

#: What names a preset where a run-config path is expected: ``preset:NAME``.
PRESET_PREFIX = "preset:"


def _directory() -> Path:
    """The folder of the packaged YAML files (a real directory in any ordinary, non-zipped install)."""
    return Path(str(resources.files(__name__)))


def list_presets() -> list[str]:
    """Sorted names of the packaged presets (file names without ``.yaml``)."""
    return sorted(path.stem for path in _directory().glob("*.yaml"))


def preset_path(name: str) -> Path:
    """The YAML file of preset ``name``; an unknown name is a ValueError naming it, the closest preset
    names and all of them."""
    names = list_presets()
    if name not in names:
        close = difflib.get_close_matches(name, names, n=1)
        hint = f"did you mean {close[0]!r}? " if close else ""
        raise ValueError(f"unknown preset {name!r}; {hint}presets are {', '.join(names)} (dynrep presets lists "
                         "them)")
    return _directory() / f"{name}.yaml"


def preset_text(name: str) -> str:
    """The YAML text of preset ``name``, comment block included: what ``dynrep presets --show`` prints."""
    return preset_path(name).read_text()


def load_preset(name: str):
    """Preset ``name`` as a :class:`~dynrep.runs.RunConfig` (its settings checked like any run config's)."""
    from dynrep.runs import load_run_config
    return load_run_config(preset_path(name))


def _description(text: str) -> str:
    """The first comment line of a preset's text, without its ``#``."""
    for line in text.splitlines():
        if line.startswith("#") and line.lstrip("#").strip():
            return line.lstrip("#").strip()
    return ""


def describe_presets() -> dict[str, str]:
    """``{name: one-line description}`` of every preset (the first line of its comment block), sorted by name."""
    return {name: _description(preset_text(name)) for name in list_presets()}

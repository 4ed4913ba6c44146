"""Name -> Environment class table: ``make_env("gridworld", size=5)``, ``list_envs()``."""
from __future__ import annotations

from typing import Any

from dynrep.registry import Registry

_ENVS = Registry("environment", "env_name")

#: Class decorator: ``@register_env("gridworld")``.
register_env = _ENVS.register
#: Sorted names of the registered environments.
list_envs = _ENVS.names
#: The Environment class registered under a name (KeyError lists the known names).
env_class = _ENVS.get


def make_env(name: str, *args: Any, **kwargs: Any):
    """Build the environment registered as ``name`` with constructor ``args`` and ``kwargs``."""
    return env_class(name)(*args, **kwargs)

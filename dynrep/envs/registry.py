"""Name -> Environment class table: ``make_env("gridworld", size=5)``, ``list_envs()``."""
from __future__ import annotations

from typing import Any, Callable, TypeVar

_ENVS: dict[str, type] = {}
E = TypeVar("E", bound=type)


def register_env(name: str) -> Callable[[E], E]:
    """Class decorator adding an Environment subclass to the table under ``name``."""
    def decorate(cls: E) -> E:
        if name in _ENVS and _ENVS[name] is not cls:
            raise ValueError(f"environment name {name!r} is already registered to {_ENVS[name].__name__}")
        cls.env_name = name
        _ENVS[name] = cls
        return cls
    return decorate


def list_envs() -> list[str]:
    """Sorted names of the registered environments."""
    return sorted(_ENVS)


def env_class(name: str) -> type:
    """The Environment class registered as ``name``; KeyError lists the known names."""
    if name not in _ENVS:
        raise KeyError(f"unknown environment {name!r}; registered environments: {list_envs()}")
    return _ENVS[name]


def make_env(name: str, **kwargs: Any):
    """Build the environment registered as ``name`` with constructor ``kwargs``."""
    return env_class(name)(**kwargs)

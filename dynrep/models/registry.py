"""The one model table: ``@register_model("rotation")``, ``build_model``, ``list_models``."""
from __future__ import annotations

from typing import Any, Callable, TypeVar

from dynrep.config import config_from_dict

_MODELS: dict[str, type] = {}
M = TypeVar("M", bound=type)


def register_model(name: str) -> Callable[[M], M]:
    """Class decorator adding a RepresentationModel subclass to the table under ``name``."""
    def decorate(cls: M) -> M:
        if name in _MODELS and _MODELS[name] is not cls:
            raise ValueError(f"model name {name!r} is already registered to {_MODELS[name].__name__}")
        cls.model_name = name
        _MODELS[name] = cls
        return cls
    return decorate


def list_models() -> list[str]:
    """Sorted names of the registered models."""
    return sorted(_MODELS)


def model_class(name: str) -> type:
    """The model class registered as ``name``; KeyError lists the known names."""
    if name not in _MODELS:
        raise KeyError(f"unknown model {name!r}; registered models: {list_models()}")
    return _MODELS[name]


def build_model(name: str, env, **overrides: Any):
    """Model ``name`` for environment ``env``, its Config defaults updated by ``overrides``."""
    cls = model_class(name)
    config = config_from_dict(cls.Config, overrides, what=f"{name!r} model")
    return cls(env, config)

"""The one model table: ``@register_model("rotation")``, ``build_model``, ``list_models``."""
from __future__ import annotations

from typing import Any

from dynrep.config import config_from_dict
from dynrep.registry import Registry

_MODELS = Registry("model", "model_name")

#: Class decorator: ``@register_model("rotation")``.
register_model = _MODELS.register
#: Sorted names of the registered models.
list_models = _MODELS.names
#: The model class registered under a name (KeyError lists the known names).
model_class = _MODELS.get


def build_model(name: str, env, **overrides: Any):
    """Model ``name`` for environment ``env``, its Config defaults updated by ``overrides``."""
    cls = model_class(name)
    config = config_from_dict(cls.Config, overrides, what=f"{name!r} model")
    return cls(env, config)

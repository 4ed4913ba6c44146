"""Name -> class tables (one for environments, one for models)."""
from __future__ import annotations

from typing import Callable, TypeVar

C = TypeVar("C", bound=type)


class Registry:
    """Classes registered under unique names; ``kind`` names the table in error messages and
    ``name_attr`` is the class attribute that receives the registered name."""

    def __init__(self, kind: str, name_attr: str):
        self.kind, self.name_attr = kind, name_attr
        self._classes: dict[str, type] = {}

    def register(self, name: str) -> Callable[[C], C]:
        """Class decorator adding the class to the table under ``name``."""
        def decorate(cls: C) -> C:
            if name in self._classes and self._classes[name] is not cls:
                raise ValueError(f"{self.kind} name {name!r} is already registered to "
                                 f"{self._classes[name].__name__}")
            setattr(cls, self.name_attr, name)
            self._classes[name] = cls
            return cls
        return decorate

    def names(self) -> list[str]:
        """Sorted registered names."""
        return sorted(self._classes)

    def get(self, name: str) -> type:
        """The class registered as ``name``; KeyError lists the known names."""
        if name not in self._classes:
            raise KeyError(f"unknown {self.kind} {name!r}; registered {self.kind}s: {self.names()}")
        return self._classes[name]

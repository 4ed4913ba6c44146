"""griffe extension: the docstrings' Sphinx roles (``:func:`mig```, ``:class:`~dynrep.models.vae.VAE```) shown as
code (``mig``, ``VAE``) in the API reference instead of raw role markup."""
from __future__ import annotations

import re

import griffe

ROLE = re.compile(r":(?:func|class|meth|attr|data|mod|obj|exc):`(~?)([^`]+)`")


def _code(match: re.Match) -> str:
    short, target = match.groups()
    return f"``{target.rsplit('.', 1)[-1] if short else target}``"


class SphinxRoles(griffe.Extension):
    def on_object(self, *, obj, **kwargs) -> None:
        if obj.docstring is not None:
            obj.docstring.value = ROLE.sub(_code, obj.docstring.value)

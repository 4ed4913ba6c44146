"""The trainer's optimiser: ``torch.optim.Adam`` without its guards against ``torch.compile`` tracing.

``torch.optim.Optimizer`` wraps ``step``, ``zero_grad``, ``add_param_group``, ``state_dict`` and
``load_state_dict`` in functions that import ``torch._dynamo`` on their first call (and with it sympy: ~830
modules and ~70 MB of resident memory, a seventh of ``dynrep demo``'s peak) only to tell the compiler not to
trace them. :class:`EagerAdam` calls the methods those wrappers hold: the same update (the fused or foreach
kernel included), state and ``state_dict`` as ``torch.optim.Adam``, of which it is a subclass. Use
``torch.optim.Adam`` itself in code that ``torch.compile`` traces through the optimiser step.
"""
from __future__ import annotations

import torch

_Optimizer = torch.optim.Optimizer


def _unguarded(method):
    """The function a dynamo guard wraps (``method`` itself where a torch release has no such wrapper)."""
    return getattr(method, "__wrapped__", method)


_step = _unguarded(torch.optim.Adam.step)
_zero_grad = _unguarded(_Optimizer.zero_grad)
_add_param_group = _unguarded(_Optimizer.add_param_group)
_state_dict = _unguarded(_Optimizer.state_dict)
_load_state_dict = _unguarded(_Optimizer.load_state_dict)


class EagerAdam(torch.optim.Adam):
    """``torch.optim.Adam`` (same arguments, update and ``state_dict``) that never imports ``torch._dynamo``."""

    @torch.no_grad()
    def step(self, closure=None):
        if self.defaults["differentiable"]:
            raise ValueError("EagerAdam does not support differentiable=True; use torch.optim.Adam")
        return _step(self, closure)

    def zero_grad(self, set_to_none: bool = True) -> None:
        _zero_grad(self, set_to_none)

    def add_param_group(self, param_group: dict) -> None:
        _add_param_group(self, param_group)

    def state_dict(self) -> dict:
        return _state_dict(self)

    def load_state_dict(self, state_dict: dict) -> None:
        _load_state_dict(self, state_dict)

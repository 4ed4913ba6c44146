"""One training loop for every model: sample a batch, loss, guard, Adam step, log."""
from __future__ import annotations

import time
from typing import Sequence

import numpy as np
import torch


from dynrep.checks import check_int
from dynrep.schedules import staircase_decay
from dynrep.training.callbacks import Callback, NaNGuard


def decayed_groups(groups: list[dict], weight_decay: float) -> list[dict]:
    """Optimiser groups with L2 ``weight_decay`` on the weights only: each group split into its parameters
    with >= 2 dims (weight matrices, conv kernels) at ``weight_decay`` and the others (biases, scales) at 0,
    as TensorFlow's ``weights_regularizer``; ``weight_decay`` 0: ``groups`` unchanged."""
    if not weight_decay:
        return groups
    out = []
    for group in groups:
        params = list(group["params"])
        for chosen, decay in (([p for p in params if p.ndim >= 2], weight_decay),
                              ([p for p in params if p.ndim < 2], 0.0)):
            if chosen:
                out.append({**group, "params": chosen, "weight_decay": decay})
    return out


class Trainer:
    """Owns the optimiser, the step counter, the data and noise generators and the history.

    Each step draws ``config.batch_size`` episodes of ``config.episode_length`` actions
    from the environment with the trainer's numpy generator, asks the model for its
    loss (passing the trainer's torch generator for sampling noise) and takes one Adam
    step over the model's parameter groups, with the config's ``weight_decay`` on their weights
    (:func:`decayed_groups`) and, if ``lr_decay_steps`` is set, each group's learning rate times
    ``lr_decay_rate ** (step // lr_decay_steps)``. Everything that determines the next step
    is in :meth:`state_dict`, so a restored trainer continues exactly.
    """

    def __init__(self, model, env, *, seed: int, device: torch.device):
        self.model, self.env, self.device = model, env, device
        groups = decayed_groups(model.parameter_groups(), model.config.weight_decay)
        # The fused kernel updates all parameters in one call: the cheapest optimiser step on CPU and CUDA.
        self.optimizer = torch.optim.Adam(groups, fused=device.type in ("cpu", "cuda"))
        # The schedule's base rates come from the config, not the optimiser state: a pure function of the step.
        self.base_lrs = [group["lr"] for group in self.optimizer.param_groups]
        self.step = 0
        self.rng = np.random.default_rng(seed)
        self.generator = torch.Generator(device=device).manual_seed(seed)
        self.history: dict[str, list[float]] = {}

    def sample_batch(self):
        c = self.model.config
        batch = self.env.sample_trajectories(c.batch_size, c.episode_length, self.rng, c.max_action_magnitude)
        return batch.to(self.device)

    def fit(self, steps: int, *, time_limit: float | None = None,
            callbacks: Sequence[Callback] = ()) -> dict[str, list[float]]:
        """Train for ``steps`` optimiser steps or until ``time_limit`` seconds have passed.

        Returns the full history: ``{term: [value per step]}`` with ``"loss"`` the total.
        """
        steps = check_int("steps", steps, 0)
        if time_limit is not None and not time_limit > 0:
            raise ValueError(f"time_limit must be a positive number of seconds or None, got {time_limit!r}")
        callbacks = [NaNGuard(), *callbacks]
        for cb in callbacks:
            cb.on_train_begin(self, steps)
        start, reason = time.monotonic(), "steps"
        self.model.train()
        for _ in range(steps):
            if time_limit is not None and time.monotonic() - start >= time_limit:
                reason = "time_limit"
                break
            out = self.model.loss(self.sample_batch(), self.step, self.generator)
            names = ["loss", *out.terms]
            logs = dict(zip(names, torch.stack([out.total.detach(), *(t.detach() for t in out.terms.values())])
                            .tolist()))
            for cb in callbacks:
                cb.on_loss(self, logs)
            self.optimizer.zero_grad(set_to_none=True)
            out.total.backward()
            self.set_learning_rates()
            self.optimizer.step()
            self.step += 1
            for name, value in logs.items():
                self.history.setdefault(name, []).append(value)
            for cb in callbacks:
                cb.on_step_end(self, logs)
        self.model.eval()
        for cb in callbacks:
            cb.on_train_end(self, reason)
        return self.history

    def set_learning_rates(self) -> None:
        """Each group's rate for the current step under the config's step decay (no-op without one)."""
        c = self.model.config
        if c.lr_decay_steps is None:
            return
        factor = staircase_decay(self.step, c.lr_decay_rate, c.lr_decay_steps)
        for group, base in zip(self.optimizer.param_groups, self.base_lrs):
            group["lr"] = base * factor

    def state_dict(self) -> dict:
        """Tensors and plain values only (safe for ``torch.load(weights_only=True)``)."""
        return {"model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(), "step": self.step,
                "numpy_rng": self.rng.bit_generator.state, "torch_rng": self.generator.get_state(),
                "history": self.history}

    def load_state_dict(self, state: dict) -> None:
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.step = int(state["step"])
        self.rng.bit_generator.state = state["numpy_rng"]
        self.generator.set_state(state["torch_rng"])
        self.history = {k: list(v) for k, v in state["history"].items()}

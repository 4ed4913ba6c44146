"""CompositionNet: the composition task of "Lost in Latent Space" (Montero et al., NeurIPS 2023).

Reference: mmrl/lost-in-latent-space commit 1dbaf35 (``TripletDataset`` and the composition
models), as summarised in specs/latent.md §1.4. A shared Gaussian VAE encoder (the
:class:`~dynrep.models.vae.VAE` of this package) encodes a reference image ``x_r`` and a
command image ``x_q``; a composition operator maps ``(z_r, z_q, a)``, ``a = one_hot(k, K)``
naming the factor ``k`` the command carries, to the latent ``z_t`` of the target image
``x_t`` (the reference with factor ``k`` set to the command's value). All three latents
are decoded. Loss = reconstruction summed over the three outputs / B + β·KL over the 2B
posteriors / B.

Operators (``composition=``):

* ``"linear"``: ``z_t = W_r[z_r; a] + W_q[z_q; a]`` (two ``Linear(L+K -> L)``).
* ``"interp"`` (default, used in most reported runs): ``w = σ(Linear(2L+K -> L)([z_r; z_q; a]))``,
  ``z_t = w⊙z_r + (1−w)⊙z_q``.
* ``"fixint"``: ``a`` zero-padded to ``L``, ``z_t = z_r⊙(1−a) + z_q⊙a`` (assumes latent ``k`` codes
  factor ``k``; needs ``latent_dim >= K``; no parameters).
* ``"mlp"``: ``Linear(2L+K -> 128)-ReLU-Linear(128 -> L)``.

Training data: dynrep trainers hand every model a batch of trajectories, so the triplets are
built inside :meth:`CompositionNet.loss` from the batch's factor classes (the references) by
:func:`sample_triplets`, with a numpy generator seeded from the trainer's torch generator (:func:`host_seed`), and
rendered by the environment the model was built with. Defaults: LiLS composition runs (Adam lr
1e-4, batch 64, latent 10, β = 1, ``interp``). Deviations: LiLS draws references from a fixed
dataset of images, here they are the trainer's uniformly sampled frames (the same
distribution); the command's other factors are resampled one after another in a random order so
that each step stays inside the valid set (the reference resamples them "uniformly among valid
values, excluding the current when possible"); when no factor of a reference can change within
the valid set (an isolated combination) its target is the reference itself. Models are built
with their environment; a checkpoint stores the environment's config only, so a model trained on
``env.split(name)`` is restored with the full environment (identical weights and outputs, but
further training would draw triplets from the full grid).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from dynrep.checks import as_generator, check_int
from dynrep.data.devices import reads_free, to_device
from dynrep.data.trajectory import Trajectory
from dynrep.models.base import LossOutput, observations_to_float
from dynrep.models.registry import register_model
from dynrep.models.vae import VAE, gaussian_kl

COMPOSITIONS = ("linear", "interp", "fixint", "mlp")


def _valid_table(env) -> np.ndarray | None:
    """Boolean ``[num_states]`` of allowed combinations (``SplitEnvironment.allowed``), ``None`` = all."""
    allowed = getattr(env, "allowed", None)
    return None if allowed is None else np.asarray(allowed, dtype=bool)


def _valid_values(code: np.ndarray, k: int, sizes: tuple[int, ...], allowed: np.ndarray | None) -> np.ndarray:
    """Values of factor ``k`` that keep ``code`` (other factors fixed) a valid combination."""
    values = np.arange(sizes[k])
    if allowed is None:
        return values
    codes = np.repeat(code[None], sizes[k], axis=0)
    codes[:, k] = values
    return values[allowed[np.ravel_multi_index(tuple(codes.T), sizes)]]


def sample_triplets(env, n: int, rng: np.random.Generator | int | None = None,
                    reference: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """Composition-task triplets of a discrete-factor environment (LiLS ``TripletDataset``).

    For each reference code ``c`` (``reference [n, K]`` class indices, else drawn with
    ``env.sample_factors``): factor ``k`` = the first, in a random order, with more than one
    valid value given the other factors; target ``c_t`` = ``c`` with ``k`` set to a different valid
    value drawn uniformly; command ``c_q`` = ``c_t`` with every other factor (in a random order)
    resampled uniformly among its valid values other than the current one (kept when it has
    none), so the command shares only factor ``k`` with the target where the valid set allows.
    Validity follows ``env.allowed`` for a :class:`~dynrep.envs.splits.SplitEnvironment`.

    Returns a dict of ``reference``, ``command``, ``target`` codes ``[n, K]`` int64, ``factor``
    ``[n]`` (``k``), ``action`` ``[n, K]`` float32 one-hot of ``k``, and the rendered images
    ``x_r``, ``x_q``, ``x_t`` ``[n, *observation_shape]``.
    """
    n = check_int("n", n, 1)
    if not env.factors.discrete:
        raise ValueError(f"sample_triplets needs discrete factors; {type(env).__name__} has continuous ones")
    rng = as_generator(rng)
    sizes = tuple(int(s) for s in env.factors.sizes)
    num_factors = len(sizes)
    allowed = _valid_table(env)
    if reference is None:
        reference = env.sample_factors(n, rng)
    reference = env.factors.validate(reference)
    if len(reference) != n:
        raise ValueError(f"reference must have {n} rows, got {len(reference)}")
    target, command = reference.copy(), reference.copy()
    factor = np.zeros(n, dtype=np.int64)
    for i in range(n):
        order = rng.permutation(num_factors)
        factor[i] = order[0]
        for k in order:
            others = _valid_values(reference[i], k, sizes, allowed)
            others = others[others != reference[i, k]]
            if len(others):
                factor[i] = k
                target[i, k] = others[rng.integers(len(others))]
                break
        code = target[i].copy()
        for j in rng.permutation(num_factors):
            if j == factor[i]:
                continue
            others = _valid_values(code, j, sizes, allowed)
            others = others[others != code[j]]
            if len(others):
                code[j] = others[rng.integers(len(others))]
        command[i] = code
    action = np.eye(num_factors, dtype=np.float32)[factor]
    images = env.render(np.concatenate([reference, command, target]))
    x_r, x_q, x_t = np.split(images, 3)
    return {"reference": reference, "command": command, "target": target, "factor": factor, "action": action,
            "x_r": x_r, "x_q": x_q, "x_t": x_t}


def host_seed(generator: torch.Generator | None = None) -> int:
    """A seed in ``[0, 2**62)`` for sampling on the host, drawn from ``generator`` (None: torch's default one)
    without waiting for a device. Either way the generator advances by one draw of ``randint(0, 2**62, (1,))``;
    on the CPU the seed is that draw, elsewhere (where reading it would wait for the device) a hash of the
    generator's state after it (a host tensor for every device: CUDA's is its seed and offset)."""
    device = torch.device("cpu") if generator is None else generator.device
    draw = torch.randint(0, 2**62, (1,), generator=generator, device=device)
    if reads_free(draw):
        return int(draw)
    words = np.frombuffer(generator.get_state().numpy().tobytes(), dtype=np.uint32)
    return int(np.random.SeedSequence(words).generate_state(1, np.uint64)[0] >> np.uint64(2))


class Composition(nn.Module):
    """Composition operator ``(z_r [B, L], z_q [B, L], a [B, K]) -> z_t [B, L]``; see the module docstring."""

    def __init__(self, kind: str, latent_dim: int, num_factors: int, hidden: int = 128):
        super().__init__()
        if kind not in COMPOSITIONS:
            raise ValueError(f"composition must be one of {COMPOSITIONS}, got {kind!r}")
        if kind == "fixint" and latent_dim < num_factors:
            raise ValueError(f"composition='fixint' needs latent_dim >= the number of factors {num_factors}, "
                             f"got {latent_dim}")
        self.kind, self.latent_dim, self.num_factors = kind, latent_dim, num_factors
        L, K = latent_dim, num_factors
        if kind == "linear":
            self.reference_map = nn.Linear(L + K, L)
            self.command_map = nn.Linear(L + K, L)
        elif kind == "interp":
            self.gate = nn.Linear(2 * L + K, L)
        elif kind == "mlp":
            self.net = nn.Sequential(nn.Linear(2 * L + K, hidden), nn.ReLU(), nn.Linear(hidden, L))

    def forward(self, z_r: torch.Tensor, z_q: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
        if self.kind == "linear":
            return self.reference_map(torch.cat([z_r, a], -1)) + self.command_map(torch.cat([z_q, a], -1))
        if self.kind == "interp":
            w = torch.sigmoid(self.gate(torch.cat([z_r, z_q, a], -1)))
            return w * z_r + (1 - w) * z_q
        if self.kind == "fixint":
            mask = nn.functional.pad(a, (0, self.latent_dim - self.num_factors))
            return z_r * (1 - mask) + z_q * mask
        return self.net(torch.cat([z_r, z_q, a], -1))


@register_model("composition_net")
class CompositionNet(VAE):
    """LiLS CompositionNet on a shared VAE; ``representation`` is the encoder mean.

    Logged terms: ``reconstruction`` (all three outputs), ``reconstruction_target`` (the composed
    output alone) and ``kl`` (over the 2B posteriors, divided by B). See the module docstring.
    """

    @dataclass
    class Config(VAE.Config):
        latent_dim: int = 10
        batch_size: int = 64
        episode_length: int = 0
        lr: float = 1e-4
        beta: float = 1.0
        composition: str = "interp"
        composition_hidden: int = 128

        def __post_init__(self):
            super().__post_init__()
            if self.composition not in COMPOSITIONS:
                raise ValueError(f"composition must be one of {COMPOSITIONS}, got {self.composition!r}")
            check_int("composition_hidden", self.composition_hidden, 1)

    def __init__(self, env, config: Config):
        if not env.factors.discrete:
            raise ValueError(f"composition_net needs discrete factors; {type(env).__name__} has continuous ones")
        super().__init__(env, config)
        #: The environment that renders the triplets (not a module: not in the state dict).
        self.env = env
        self.num_factors = len(env.factors)
        self.composition = Composition(config.composition, config.latent_dim, self.num_factors,
                                       config.composition_hidden)

    def compose(self, z_r: torch.Tensor, z_q: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        """Target latent ``[B, L]`` of reference and command latents and the one-hot factor ``[B, K]``."""
        return self.composition(z_r, z_q, action)

    def triplets(self, batch: Trajectory, generator: torch.Generator | None = None) -> dict[str, np.ndarray]:
        """:func:`sample_triplets` for the batch's frames as references (:meth:`Trajectory.host_factors
        <dynrep.data.trajectory.Trajectory.host_factors>`: no wait for a device), seeded by :func:`host_seed`."""
        seed = host_seed(generator)
        reference = batch.host_factors().flatten(0, 1).numpy()
        return sample_triplets(self.env, len(reference), np.random.default_rng(seed), reference)

    def loss(self, batch: Trajectory, step: int, generator: torch.Generator | None = None) -> LossOutput:
        data = self.triplets(batch, generator)
        device = batch.obs.device
        images = [observations_to_float(to_device(torch.from_numpy(data[x]), device)) for x in ("x_r", "x_q", "x_t")]
        action = to_device(torch.from_numpy(data["action"]), device)
        n = len(action)
        post = self.encode(torch.cat(images[:2]))
        noise = torch.randn(post.mean.shape, generator=generator, device=post.mean.device)
        z = post.mean + noise * (0.5 * post.logvar).exp()
        z_r, z_q = z[:n], z[n:]
        z_t = self.compose(z_r, z_q, action)
        logits = self.decode_logits(torch.cat([z_r, z_q, z_t])).split(n)
        terms = [self.reconstruction_term(out, target) for out, target in zip(logits, images)]
        reconstruction = terms[0] + terms[1] + terms[2]
        kl = gaussian_kl(post.mean, post.logvar).sum() / n
        return LossOutput(reconstruction + self.config.beta * kl,
                          {"reconstruction": reconstruction, "reconstruction_target": terms[2], "kl": kl})

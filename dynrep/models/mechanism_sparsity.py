"""Disentanglement via mechanism sparsity (Lachapelle et al., CLeaR 2022), ``--mode vae``.

A VAE whose prior is a learned latent transition ``p(z^t | z^{t-1}, a^{t-1}) = prod_i N(mu_i, sigma_i^2)``
in which latent ``i`` sees only its parents: ``z_j^{t-1}`` through the mask ``G^z_ij`` and
``a_j`` through ``G^a_ij``. The masks are learned Gumbel-sigmoid samples (:mod:`dynrep.models.masks`)
and their expected number of edges is penalised, which is what makes the latents identifiable.

Reference facts followed (specs/causal.md 1.1-1.2, first commit ce29394 of
slachapelle/disentanglement_via_mechanism_sparsity):

* Encoder ``d_x -> [512]x6 -> 2 d_z`` and decoder ``d_z -> [512]x6 -> d_x`` with LeakyReLU(0.2)
  (``mlp_hidden=(512,)*6, mlp_activation="leaky_relu"``); posterior variance ``softplus(s) + 1e-4``.
* Decoder ``N(g(z), sigma_x^2 I)`` with ``log sigma_x^2`` fixed at 0 (CLeaR); ``learn_decoder_var=True,
  decoder_logvar_init=-10`` is the HEAD/``--learn_decoder_var`` variant.
* Transition prior, one network per latent run as one batched network (:class:`MaskedTransitionPrior`):
  first layer ``h_i = b_i + W^z_i (G^z_i * z^{t-1}) + W^a_i (G^a_i * a)`` (masked inputs filled with the
  frozen dummy 0, separate zero-initialised bias), LeakyReLU(0.2), ``transition_layers - 1`` bias-free
  hidden layers, a biased output layer giving the mean; variance ``softplus(rho_i) + 1e-6`` with a free
  ``rho_i`` initialised so that it starts at 1e-4 (``transition_var="fixed"`` freezes it).
* ``n_lag = 0`` (action datasets): the prior depends on ``a`` only and only frame 1 of the window is
  used (frame 0 of toy-nn action trajectories is another row's context); ``n_lag = 1`` (temporal
  datasets): both frames are reconstructed, the prior reads a reparameterised SAMPLE of ``z^0``.
* Masks: logits initialised to 5, temperature 1, soft samples drawn independently per example
  (``mask_samples="per_example"``; ``"per_batch"`` is HEAD's one sample per minibatch), ``hard_masks`` is
  ``--drawhard``; ``freeze_graph_z`` / ``freeze_graph_a`` are ``--freeze_g`` / ``--freeze_gc``.
* Loss per example, averaged over the batch: ``rec + beta * KL / d_x + (reg_z / d_x) sum sigmoid(alpha^z)
  + (reg_a / d_x) sum sigmoid(alpha^a)``, ``rec`` the mean over frames and coordinates of
  ``-log p(x | z)``, ``KL`` the analytic KL of the last frame's posterior to the transition prior;
  ``full_seq`` averages it with the KL of frame 0 to a learned initial prior ``N(mu_0, softplus(nu_0)
  + 1e-6)`` (``mu_0 = 0``, variance 1 at init).
* Adam, lr 5e-4, batch 1024. Validation-based model selection and ReduceLROnPlateau are
  :class:`dynrep.training.validation.BestValidation`.

Deviations: the transition network outputs only the mean (the reference's second output is ignored
in its default ``var_p_mode="independent"``); the decoder std is ``exp(logvar / 2)`` (the reference adds
1e-4); discrete actions are one-hot vectors masked per column (the reference has one mask entry per
latent for the whole discrete action); the always-frozen latent mask ``m``, learnable dummies, batch
norm and ``var_p_mode="dependent"`` are not implemented; batches are drawn with replacement (not
shuffled epochs).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from dynrep.checks import check_int
from dynrep.data.trajectory import Trajectory
from dynrep.models.base import LossOutput, Posterior, SequenceConfig, observations_to_float
from dynrep.models.masks import GumbelSigmoidMask
from dynrep.models.nets import LEAKY_SLOPE, ParallelLinear
from dynrep.models.registry import register_model
from dynrep.models.vae import VAE, elementwise_nll

MASK_SAMPLES = ("per_example", "per_batch")
TRANSITION_VARS = ("independent", "fixed")
#: Floors of the posterior and prior variances (reference values).
POSTERIOR_VAR_FLOOR, PRIOR_VAR_FLOOR = 1e-4, 1e-6
#: Initial transition variance (the data's latent noise level).
PRIOR_VAR_INIT = 1e-4


def normal_kl(mean_q: torch.Tensor, logvar_q: torch.Tensor, mean_p: torch.Tensor,
              var_p: torch.Tensor) -> torch.Tensor:
    """Elementwise ``KL(N(mean_q, exp(logvar_q)) || N(mean_p, var_p))`` (all arguments broadcast)."""
    return 0.5 * (var_p.log() - logvar_q + (logvar_q.exp() + (mean_q - mean_p).square()) / var_p - 1.0)


def inverse_softplus(value: float) -> float:
    """``rho`` with ``softplus(rho) = value`` (``value > 0``)."""
    return math.log(math.expm1(value))


class MaskedTransitionPrior(nn.Module):
    """``d_z`` independent Gaussian transition networks, one per latent, run as one batched network.

    Latent ``i`` reads ``mask_z[:, i] * z_prev`` and ``mask_a[:, i] * actions``; its first layer is
    ``input_bias[i] + W^z_i z~_i + W^a_i a~_i`` (bias-free :class:`ParallelLinear` maps), followed by
    LeakyReLU(0.2), ``layers - 1`` bias-free hidden layers of width ``hidden`` and a biased output
    layer to the mean. The variance ``softplus(rho) + 1e-6`` ``[d_z]`` does not depend on the inputs.

    Args:
        latent_dim: ``d_z``.
        action_dim: ``d_a`` (0: no action input).
        use_z: whether the prior reads ``z^{t-1}`` (``n_lag = 1``).
        hidden, layers: width and number of hidden layers (>= 1) of each network.
        learn_var: whether ``rho`` is trained.
    """

    def __init__(self, latent_dim: int, action_dim: int, use_z: bool, hidden: int, layers: int,
                 learn_var: bool = True):
        super().__init__()
        if not use_z and not action_dim:
            raise ValueError("the transition prior needs z^{t-1} (use_z) or actions (action_dim > 0)")
        self.linear_z = ParallelLinear(latent_dim, latent_dim, hidden, bias=False) if use_z else None
        self.linear_a = ParallelLinear(latent_dim, action_dim, hidden, bias=False) if action_dim else None
        self.input_bias = nn.Parameter(torch.zeros(latent_dim, hidden))
        body: list[nn.Module] = [nn.LeakyReLU(LEAKY_SLOPE)]
        for _ in range(layers - 1):
            body += [ParallelLinear(latent_dim, hidden, hidden, bias=False), nn.LeakyReLU(LEAKY_SLOPE)]
        body.append(ParallelLinear(latent_dim, hidden, 1))
        self.body = nn.Sequential(*body)
        self.rho = nn.Parameter(torch.full((latent_dim,), inverse_softplus(PRIOR_VAR_INIT)), requires_grad=learn_var)

    def variance(self) -> torch.Tensor:
        """Transition variances ``softplus(rho) + 1e-6`` ``[d_z]``."""
        return F.softplus(self.rho) + PRIOR_VAR_FLOOR

    def forward(self, z_prev: torch.Tensor | None, actions: torch.Tensor | None,
                mask_z: torch.Tensor | None, mask_a: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        """Prior mean ``[B, d_z]`` and variance ``[d_z]`` from ``z_prev [B, d_z]`` and ``actions [B, d_a]``
        with masks ``[S, d_z, d_z]`` / ``[S, d_z, d_a]`` (``S`` = 1 or ``B``; rows = children). Inputs the
        prior does not read are None."""
        h = self.input_bias
        if self.linear_z is not None:
            h = h + self.linear_z(mask_z * z_prev[:, None, :])
        if self.linear_a is not None:
            h = h + self.linear_a(mask_a * actions[:, None, :])
        return self.body(h).squeeze(-1), self.variance()


def _check_bool(name: str, value) -> None:
    if not isinstance(value, (bool, np.bool_)):
        raise ValueError(f"{name} must be True or False, got {value!r}")


def _check_float(name: str, value, minimum: float | None = None, strict: bool = False) -> None:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if ok and minimum is not None:
        ok = value > minimum if strict else value >= minimum
    if not ok:
        bound = "" if minimum is None else f" {'>' if strict else '>='} {minimum}"
        raise ValueError(f"{name} must be a finite number{bound}, got {value!r}")


@register_model("mechanism_sparsity")
class MechanismSparsityVAE(VAE):
    """VAE with a sparse learned transition prior (see the module docstring for the objective).

    Needs an environment with actions (``n_lag = 0`` or 1) or a temporal one (``n_lag = 1``);
    ``n_lag`` defaults to ``env.n_lag`` when the environment has one, else 1. Continuous actions
    ``[B, 1, A]`` are used as they are, discrete ones ``[B, 1]`` as one-hot vectors of
    ``env.actions.n`` columns. Trains on windows of two frames (``episode_length = 1``).
    """

    @dataclass
    class Config(SequenceConfig, VAE.Config):
        """Published (CLeaR) defaults; reference flags in brackets.

        Attributes:
            decoder_logvar_init, learn_decoder_var: decoder log-variance, fixed at 0 (CLeaR); the HEAD
                variant is ``learn_decoder_var=True, decoder_logvar_init=-10.0`` [--learn_decoder_var].
            transition_hidden, transition_layers: width and number of hidden layers of each latent's
                transition network [--transition_hid_dim 512, --transition_n_layer 5].
            gumbel_temperature: mask temperature [--gumbel_temperature].
            hard_masks: straight-through hard mask samples [--drawhard].
            mask_samples: ``"per_example"`` (one mask sample per example, CLeaR) or ``"per_batch"`` (HEAD).
            reg_z, reg_a: penalty coefficients on the expected edge counts of ``G^z`` / ``G^a``
                [--g_reg_coeff, --gc_reg_coeff].
            freeze_graph_z, freeze_graph_a: fixed fully connected graphs, no penalty [--freeze_g, --freeze_gc].
            mask_init: initial mask logit.
            lr_masks: Adam learning rate of the mask logits (None: ``lr``). Not in the CLeaR code (HEAD
                offers SGD with lr 1.0 for them); a lever for short budgets, where Adam moves each logit
                by at most about ``lr`` per step and logits starting at 5 barely reach 0. On temporal toy-nn
                it prunes faster without raising MCC (benchmarks/RESULTS.md, mechanism sparsity).
            n_lag: 0 (prior on actions only) or 1 (prior on ``z^{t-1}`` and actions if any); None takes
                ``env.n_lag`` (1 for environments without it) [--n_lag].
            full_seq: also model frame 0 with a learned initial prior (needs ``n_lag=1``) [--full_seq].
            transition_var: ``"independent"`` (learned per-latent variance) or ``"fixed"`` (frozen at
                1e-4) [--var_p_mode].
        """

        lr: float = 5e-4
        beta: float = 1.0
        reconstruction: str = "normal"
        decoder_logvar_init: float = 0.0
        learn_decoder_var: bool = False
        transition_hidden: int = 512
        transition_layers: int = 5
        gumbel_temperature: float = 1.0
        hard_masks: bool = False
        mask_samples: str = "per_example"
        reg_z: float = 0.0
        reg_a: float = 0.0
        freeze_graph_z: bool = False
        freeze_graph_a: bool = False
        mask_init: float = 5.0
        lr_masks: float | None = None
        n_lag: int | None = None
        full_seq: bool = False
        transition_var: str = "independent"

        def __post_init__(self):
            super().__post_init__()
            if self.episode_length != 1:
                raise ValueError(f"episode_length must be 1 (the model reads windows of two frames), "
                                 f"got {self.episode_length!r}")
            check_int("transition_hidden", self.transition_hidden, 1)
            check_int("transition_layers", self.transition_layers, 1)
            _check_float("gumbel_temperature", self.gumbel_temperature, 0.0, strict=True)
            _check_float("reg_z", self.reg_z, 0.0)
            _check_float("reg_a", self.reg_a, 0.0)
            _check_float("mask_init", self.mask_init)
            if self.lr_masks is not None:
                _check_float("lr_masks", self.lr_masks, 0.0, strict=True)
            _check_float("decoder_logvar_init", self.decoder_logvar_init)
            for name in ("hard_masks", "freeze_graph_z", "freeze_graph_a", "full_seq", "learn_decoder_var"):
                _check_bool(name, getattr(self, name))
            if self.mask_samples not in MASK_SAMPLES:
                raise ValueError(f"mask_samples must be one of {MASK_SAMPLES}, got {self.mask_samples!r}")
            if self.transition_var not in TRANSITION_VARS:
                raise ValueError(f"transition_var must be one of {TRANSITION_VARS}, got {self.transition_var!r}")
            if self.n_lag is not None:
                check_int("n_lag", self.n_lag, 0, 1)
            if self.full_seq and self.n_lag == 0:
                raise ValueError("full_seq=True needs n_lag=1 (it adds the KL of frame 0), got n_lag=0")

    def __init__(self, env, config: Config):
        super().__init__(env, config)
        c = config
        self.n_lag = c.n_lag if c.n_lag is not None else int(getattr(env, "n_lag", 1))
        if self.n_lag not in (0, 1):
            raise ValueError(f"n_lag must be 0 or 1, got env.n_lag = {self.n_lag!r}")
        self.discrete_actions = bool(env.actions.discrete)
        self.action_dim = int(env.actions.n if self.discrete_actions else env.actions.dim)
        if self.n_lag == 0 and self.action_dim == 0:
            raise ValueError(f"mechanism_sparsity needs actions or a temporal prior: {type(env).__name__} has no "
                             f"actions and n_lag is 0; use an environment with actions or n_lag=1")
        if c.full_seq and self.n_lag != 1:
            raise ValueError(f"full_seq=True needs n_lag=1, but {type(env).__name__} gives n_lag={self.n_lag}")
        self.observation_size = int(np.prod(self.observation_shape))
        d = c.latent_dim
        mask = dict(init=c.mask_init, temperature=c.gumbel_temperature, hard=c.hard_masks)
        self.graph_z = GumbelSigmoidMask((d, d), frozen=c.freeze_graph_z, **mask) if self.n_lag else None
        self.graph_a = (GumbelSigmoidMask((d, self.action_dim), frozen=c.freeze_graph_a, **mask)
                        if self.action_dim else None)
        self.prior = MaskedTransitionPrior(d, self.action_dim, self.n_lag == 1, c.transition_hidden,
                                           c.transition_layers, learn_var=c.transition_var == "independent")
        if c.full_seq:
            self.initial_mean = nn.Parameter(torch.zeros(d))
            self.initial_rho = nn.Parameter(torch.full((d,), inverse_softplus(1.0)))

    def _masks(self) -> dict[str, GumbelSigmoidMask]:
        return {name: mask for name, mask in (("graph_z", self.graph_z), ("graph_a", self.graph_a))
                if mask is not None}

    def parameter_groups(self) -> list[dict]:
        """Everything at ``lr`` except the mask logits, which get ``lr_masks`` when it is set."""
        if self.config.lr_masks is None:
            return super().parameter_groups()
        return self.parameter_groups_with([mask.alpha for mask in self._masks().values()], self.config.lr_masks)

    def encode(self, obs: torch.Tensor) -> Posterior:
        """Posterior ``mean [B, d_z]`` and ``logvar = log(softplus(s) + 1e-4)`` of observations ``[B, *obs_shape]``."""
        mean, s = self.encoder(observations_to_float(obs)).chunk(2, dim=-1)
        return Posterior(mean, torch.log(F.softplus(s) + POSTERIOR_VAR_FLOOR))

    def action_inputs(self, batch: Trajectory) -> torch.Tensor | None:
        """The window's action ``[B, d_a]`` float (one-hot for discrete actions), None without actions."""
        if not self.action_dim:
            return None
        if self.discrete_actions:
            return F.one_hot(batch.actions[:, 0].long(), self.action_dim).float()
        return batch.actions[:, 0].float()

    def sample_masks(self, batch_size: int, generator: torch.Generator | None = None
                     ) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        """Masks ``(G^z [S, d_z, d_z], G^a [S, d_z, d_a])`` (None where the model has none) with ``S =
        batch_size`` (``mask_samples="per_example"``) or 1 (``"per_batch"``), noise from ``generator``."""
        n = batch_size if self.config.mask_samples == "per_example" else 1
        return tuple(None if mask is None else mask.sample(n, generator) for mask in (self.graph_z, self.graph_a))

    def initial_variance(self) -> torch.Tensor:
        """Variance ``softplus(nu_0) + 1e-6`` ``[d_z]`` of the learned initial prior (``full_seq`` only)."""
        return F.softplus(self.initial_rho) + PRIOR_VAR_FLOOR

    def loss(self, batch: Trajectory, step: int, generator: torch.Generator | None = None) -> LossOutput:
        c = self.config
        if batch.length != 1:
            raise ValueError(f"mechanism_sparsity trains on windows of two frames (episode length 1), "
                             f"got episodes of length {batch.length}")
        b = batch.batch_size
        frames = batch if self.n_lag == 1 else Trajectory(batch.obs[:, 1:], batch.actions[:, :0],
                                                           batch.factors[:, 1:])
        target, post, z = self.sample_posterior(frames, generator)
        reconstruction = elementwise_nll(self.decode_logits(z), target, c.reconstruction, self.decoder_logvar).mean()
        mean, logvar, z = (t.view(b, -1, c.latent_dim) for t in (post.mean, post.logvar, z))
        prior_mean, prior_var = self.prior(z[:, 0] if self.n_lag else None, self.action_inputs(batch),
                                           *self.sample_masks(b, generator))
        kl = normal_kl(mean[:, -1], logvar[:, -1], prior_mean, prior_var).sum(-1)
        if c.full_seq:
            kl0 = normal_kl(mean[:, 0], logvar[:, 0], self.initial_mean, self.initial_variance()).sum(-1)
            kl = 0.5 * (kl + kl0)
        kl = kl.mean()
        total = reconstruction + c.beta * kl / self.observation_size
        terms = {"reconstruction": reconstruction, "kl": kl}
        for name, mask in self._masks().items():
            coefficient = c.reg_z if name == "graph_z" else c.reg_a
            total = total + coefficient / self.observation_size * mask.penalty()
            terms["edges_" + name[-1]] = mask.probs().detach().sum()
        return LossOutput(total, terms)

    @torch.no_grad()
    def edge_probabilities(self) -> dict[str, np.ndarray]:
        """``{"graph_z": [d_z, d_z], "graph_a": [d_z, d_a]}`` float64 ``sigmoid(alpha)`` (rows = children,
        like ``env.graph_z`` / ``env.graph_a``; only the masks the model has; frozen masks are all ones)."""
        return {name: mask.probs().double().cpu().numpy() for name, mask in self._masks().items()}

    def learned_graphs(self, threshold: float = 0.5) -> dict[str, np.ndarray]:
        """The same keys as :meth:`edge_probabilities`, as 0/1 int64 arrays ``sigmoid(alpha) > threshold``."""
        _check_float("threshold", threshold, 0.0)
        if not threshold < 1:
            raise ValueError(f"threshold must be in [0, 1), got {threshold!r}")
        return {name: (p > threshold).astype(np.int64) for name, p in self.edge_probabilities().items()}

    def structure_scores(self) -> dict[str, float]:
        """Expected edge counts ``{"edges_z": sum sigmoid(alpha^z), "edges_a": ...}`` of the masks the model has."""
        return {"edges_" + name[-1]: float(p.sum()) for name, p in self.edge_probabilities().items()}

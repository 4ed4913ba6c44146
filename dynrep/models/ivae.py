"""iVAE (Khemakhem et al. 2020, "Variational Autoencoders and Nonlinear ICA: A Unifying Framework").

A VAE whose prior is conditioned on an observed auxiliary variable ``u``: here the action
``a^{t-1}`` that led to frame ``x^t``. The baseline follows the mechanism-sparsity repo's
adaptation of icebeem (specs/causal.md §1.4; read in ``baseline_models/icebeem/models/ivae/
ivae_core.py`` of slachapelle/disentanglement_via_mechanism_sparsity, commit ce29394):

* conditional prior ``p(z|u) = N(mu(u), diag(exp(lambda(u)) + 1e-6))`` from one MLP
  ``u -> [512]x5 -> 2 d_z`` (``prior_hidden``) with a learned mean (the reference author's
  choice; the original iVAE fixes the mean at 0);
* Gaussian encoder with variance ``exp(s) + 1e-6`` and decoder ``N(f(z), exp(l) + 1e-6)`` with
  ``l = -10`` fixed (``learn_decoder_var=True`` learns it from there); every ``+ 1e-6`` variance
  floor of the reference is kept (see :data:`VARIANCE_FLOOR`);
* loss ``-E_q[log p(x|z) + log p(z|u) - log q(z|x)]`` estimated with ONE reparameterised sample
  (Monte Carlo, not the analytic KL), averaged over the batch; ``beta`` (default 1, the
  reference) weighs the ``log q(z|x) - log p(z|u)`` part;
* reference encoder / decoder: the 6x512 LeakyReLU(0.2) MLP; batch 1024; Adam lr 1e-4;
  representation = encoder mean.

Data: every frame ``x^t`` with ``t >= 1`` of a training window and the action ``a^{t-1}`` before
it; frame 0 is never a target. For the toy-nn action datasets (``episode_length=1``) that is
exactly the reference row (frame 1 and its action); frame 0 is a context frame from another row.
Continuous actions are ``u`` as they are; discrete actions are one-hot vectors (scaled by the
action magnitude when the environment gives magnitudes).

Deviations:

* The encoder is ``q(z|x)``, not the reference's ``q(z|x, u)`` on ``concat(x, u)``. dynrep's metrics
  read ``representation(obs)`` from observations alone (MCC encodes test frames without their
  actions); ``q(z|x, u)`` would need an action for every frame, and any fixed stand-in ``u`` (zeros,
  the mean action) would be an arbitrary, out-of-distribution input. So no ``encoder_aux`` option
  is offered.
* No ReduceLROnPlateau schedule and no iteration budget (the trainer's ``steps`` sets it).
* The prior MLP uses ``mlp_activation`` (LeakyReLU(0.2) by default, as the reference's ``MLP``
  of ``model/nn.py``) and PyTorch's default ``nn.Linear`` initialisation.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from dynrep.data.trajectory import Trajectory
from dynrep.models.base import LossOutput, Posterior, SequenceConfig, check_widths, observations_to_float
from dynrep.models.beta_tcvae import gaussian_log_density
from dynrep.models.nets import mlp
from dynrep.models.registry import register_model
from dynrep.models.vae import VAE, reconstruction_loss

#: Added to every variance (encoder, decoder, prior), as in the reference.
VARIANCE_FLOOR = 1e-6
_LOG_FLOOR = math.log(VARIANCE_FLOOR)


def floored_logvar(logvar: torch.Tensor) -> torch.Tensor:
    """``log(exp(logvar) + 1e-6)`` elementwise (any shape), computed stably."""
    return torch.logaddexp(logvar, torch.full_like(logvar, _LOG_FLOOR))


def auxiliary_dim(env) -> int:
    """Size of ``u``: the number of discrete actions or the continuous action dimension.

    ValueError naming the environment when it has no actions.
    """
    actions = env.actions
    size = actions.n if actions.discrete else int(actions.dim)
    if size == 0:
        described = ", ".join(f"{k}={v!r}" for k, v in env.get_config().items())
        raise ValueError(f"ivae needs an environment with actions (its auxiliary variable u is the action "
                         f"a^(t-1)); {type(env).__name__}({described}) has none")
    return size


@register_model("ivae")
class IVAE(VAE):
    """iVAE with a learned conditional prior ``p(z|u)``, ``u`` = the previous action (module docstring).

    ``prior_net`` maps ``u [N, U]`` to ``[N, 2 * latent_dim]`` (prior mean, prior log-variance
    before the floor). Logged terms (batch means): ``reconstruction`` ``-log p(x|z)``,
    ``log_prior`` ``log p(z|u)``, ``log_posterior`` ``log q(z|x)`` and ``kl`` = their single-sample
    KL estimate ``log_posterior - log_prior``.
    """

    @dataclass
    class Config(SequenceConfig, VAE.Config):
        lr: float = 1e-4
        beta: float = 1.0
        reconstruction: str = "normal"
        decoder_logvar_init: float = -10.0
        learn_decoder_var: bool = False
        prior_hidden: tuple[int, ...] = (512,) * 5

        def __post_init__(self):
            super().__post_init__()
            check_widths("prior_hidden", self.prior_hidden, allow_empty=True)

    def __init__(self, env, config: Config):
        aux_dim = auxiliary_dim(env)  # before building anything: fail fast without actions
        super().__init__(env, config)
        self.aux_dim = aux_dim
        self.prior_net = mlp([aux_dim, *config.prior_hidden, 2 * config.latent_dim], config.mlp_activation)

    def encode(self, obs: torch.Tensor) -> Posterior:
        mean, logvar = self.encoder(observations_to_float(obs)).chunk(2, dim=-1)
        return Posterior(mean, floored_logvar(logvar))

    def reconstruction_term(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """``-log p(x|z)`` summed over a frame, batch mean; the ``"normal"`` variance is ``exp(l) + 1e-6``."""
        logvar = self.decoder_logvar if self.decoder_logvar is None else floored_logvar(self.decoder_logvar)
        return reconstruction_loss(logits, target, self.config.reconstruction, logvar)

    def auxiliary(self, batch: Trajectory) -> torch.Tensor:
        """``u [B * T, U]`` float: the actions ``a^0..a^{T-1}`` of the batch, one-hot if discrete."""
        actions = batch.actions
        if actions.dim() == 2:  # discrete [B, T]
            u = F.one_hot(actions, self.aux_dim).float()
            if batch.magnitudes is not None:
                u = u * batch.magnitudes[..., None].float()
            return u.flatten(0, 1)
        return actions.float().flatten(0, 1)

    def prior(self, u: torch.Tensor) -> Posterior:
        """``p(z|u)`` of ``u [N, U]``: mean and floored log-variance, each ``[N, latent_dim]``."""
        mean, logvar = self.prior_net(u).chunk(2, dim=-1)
        return Posterior(mean, floored_logvar(logvar))

    def loss(self, batch: Trajectory, step: int, generator: torch.Generator | None = None) -> LossOutput:
        if batch.length < 1:
            raise ValueError("ivae needs windows with at least one action (episode_length >= 1), got static frames")
        # x^1..x^T as static frames (frame 0 is never a target), in the order of auxiliary(batch).
        obs, factors = batch.obs[:, 1:].flatten(0, 1)[:, None], batch.factors[:, 1:].flatten(0, 1)[:, None]
        no_actions = batch.actions.flatten(0, 1)[:, None][:, :0]  # [B*T, 0] or [B*T, 0, A]
        frames = Trajectory(obs=obs, actions=no_actions, factors=factors)
        target, post, z = self.sample_posterior(frames, generator)
        reconstruction = self.reconstruction_term(self.decode_logits(z), target)
        prior = self.prior(self.auxiliary(batch))
        log_prior = gaussian_log_density(z, prior.mean, prior.logvar).sum(-1).mean()
        log_posterior = gaussian_log_density(z, post.mean, post.logvar).sum(-1).mean()
        kl = log_posterior - log_prior
        return LossOutput(reconstruction + self.config.beta * kl,
                          {"reconstruction": reconstruction, "log_prior": log_prior,
                           "log_posterior": log_posterior, "kl": kl})

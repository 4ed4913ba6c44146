"""RGrVAE, the reinforced group VAE (Painter, Hare & Prügel-Bennett 2020, "Linear disentangled
representations and unsupervised action estimation"): a ForwardVAE whose transitions' actions are not
given but chosen by a policy network among learned group actions, trained with REINFORCE.

Facts from the reference (MattPainter01/UnsupervisedActionEstimation commit 1c951bf,
``models/group_vae.py`` ``ReinforceGroupVAE`` / ``ActionConvAttentionEncoder``,
``models/policy_grads.py``, ``models/group_reps.py`` and the CLI defaults):

* ``--group-structure`` (default ``c+ c-``): for every latent pair ``k`` (``(2k, 2k+1)``) and every
  symbol one group action, pair-major (pair 0 ``c+``, pair 0 ``c-``, pair 1 ``c+``, ...), so
  ``K = len(group_structure) * latent_dim // 2`` actions. A cyclic action (``CyclicRep``) is one learned
  angle on its pair, initialised ``U(0, 1)`` times +1 (``c+``), -1 (``c-``) or 0 (``c``).
* the policy ("action encoder") sees the detached pair ``concat(x_t, x_{t+1})`` on channels:
  3x3 stride-2 convs of 32, 16, 16 channels with ReLU (orthogonal init), a linear layer to ``K``
  logits whose weights start at 0 and biases at 1 (uniform policy), and ``softmax(|logits|)``;
* ``a ~ Categorical(policy)`` and ``z_{t+1} = ρ(a) z_t`` (``z_t`` the posterior sample); the reward
  is the detached improvement of the squared latent distance to the next frame's posterior mean,
  ``R = ||z_t − μ_{t+1}||² − ||ρ(a) z_t − μ_{t+1}||²``, i.e. the negative prediction loss minus the
  baseline of taking no action; the REINFORCE loss is ``−R log p(a)`` for ``R >= 0`` and
  ``−|R| log(1 − p(a))`` for ``R < 0``, summed and divided by the batch (``policy_loss="reference"``);
  minus ``entropy_weight`` (0.01) times the policy's mean entropy;
* total = VAE loss + policy loss + γ·``Σ_dims (ρ(a) z_t − μ_{t+1})² / batch`` with γ (``--gvae-gamma``)
  defaulting to β = 1; Adam with lr 1e-3 for the VAE, the policy at the VAE's rate and the group
  angles at 0.1; latent 4, batch 128, β 1, squared-error reconstruction.

Deviations (documented):

* Everything :class:`~dynrep.models.forward_vae.ForwardVAE` documents (the library's ELBO on every
  frame, conv stacks, the rotation sign convention of ``block_rotations``, the ``planes`` option:
  ``"factor"`` = the reference's one angle per action on its own pair, ``"all"`` = an angle in every
  plane so the plane structure is learned). ``prediction="recon"``/``"both"`` score the decoded
  prediction as ForwardVAE does; the reward is always the latent one (the reference's).
* The policy convs use padding 1 (the reference has none, which needs >= 15-pixel images); vector
  observations get an MLP (``mlp_hidden``) instead. Sampling uses the given torch generator; the
  reference's optional random-action mixing (``base_policy_weight``, default 1 = off), regret
  baseline, multi-step actions and gradient clipping hooks are not implemented.
  ``policy_loss="standard"`` offers the textbook ``−R log p(a)`` for every sign of ``R``.
* The environment's actions and magnitudes are never used; the model's ``action_names`` are its own
  group actions (``"c+0"``, ``"c-0"``, ...), so ``has_dynamics`` is False (no mapping to the
  environment's actions) and ``predict`` reconstructs frames independently.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from dynrep.data.trajectory import Trajectory
from dynrep.models.base import LossOutput, RepresentationModel, check_widths, observations_to_float
from dynrep.models.forward_vae import ForwardVAE
from dynrep.models.registry import register_model
from dynrep.models.vae import VAE

GROUP_SYMBOLS = {"c+": 1.0, "c-": -1.0, "c": 0.0}
POLICY_LOSSES = ("reference", "standard")


def reinforce_loss(probs: torch.Tensor, reward: torch.Tensor, kind: str = "reference") -> torch.Tensor:
    """REINFORCE loss of the chosen actions' probabilities ``probs [N]`` and (already baselined,
    detached) rewards ``reward [N]``, averaged over the batch. ``"reference"``: ``−R log p`` where
    ``R >= 0`` and ``−|R| log(1 − p)`` where ``R < 0`` (Painter et al.); ``"standard"``: ``−R log p``."""
    reward = reward.detach()
    if kind == "standard":
        return -(reward * probs.log()).mean()
    if kind != "reference":
        raise ValueError(f"kind must be one of {POLICY_LOSSES}, got {kind!r}")
    negative = reward < 0
    logp = torch.where(negative, (1.0 - probs).clamp_min(1e-12).log(), probs.clamp_min(1e-12).log())
    return -(reward.abs() * logp).mean()


class PairPolicy(nn.Module):
    """Policy over ``num_actions`` from a detached pair of observations: ``softmax(|logits|)`` ``[N, K]``."""

    def __init__(self, observation_shape: tuple[int, ...], num_actions: int, channels: tuple[int, ...],
                 mlp_hidden: tuple[int, ...]):
        super().__init__()
        layers: list[nn.Module] = []
        if len(observation_shape) == 3:
            c_in = 2 * observation_shape[0]
            for c in channels:
                conv = nn.Conv2d(c_in, c, 3, stride=2, padding=1)
                nn.init.orthogonal_(conv.weight)
                layers += [conv, nn.ReLU()]
                c_in = c
        else:
            width = 2 * observation_shape[0]
            for h in mlp_hidden:
                layers += [nn.Linear(width, h), nn.ReLU()]
                width = h
        layers.append(nn.Flatten())
        self.body = nn.Sequential(*layers)
        with torch.no_grad():
            features = self.body(torch.zeros(1, 2 * observation_shape[0], *observation_shape[1:])).shape[-1]
        self.head = nn.Linear(features, num_actions)
        nn.init.zeros_(self.head.weight)
        nn.init.ones_(self.head.bias)

    def forward(self, x_now: torch.Tensor, x_next: torch.Tensor) -> torch.Tensor:
        pair = torch.cat([x_now, x_next], dim=1).detach()
        return self.head(self.body(pair)).abs().softmax(-1)


def sample_actions(probs: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """One categorical draw per row of ``probs [N, K]`` using ``generator``: ``[N]`` long."""
    return torch.multinomial(probs.detach(), 1, generator=generator)[:, 0]


def categorical_entropy(probs: torch.Tensor) -> torch.Tensor:
    """Entropy (nats) of each row of ``probs [..., K]``: ``[...]``."""
    return -(probs * probs.clamp_min(1e-12).log()).sum(-1)


@register_model("rgrvae")
class RGrVAE(ForwardVAE):
    """ForwardVAE without action labels: a policy picks one of ``K`` learned group actions per transition.

    Loss = reconstruction + β·KL on every frame + γ·forward term of the sampled action (as ForwardVAE)
    + REINFORCE loss of the policy − ``entropy_weight``·policy entropy. See the module docstring for the
    reference and the deviations.

    Training note (measured on ``Flatland(period=8, image_size=32)``, benchmarks/models.py): with the CLI's
    group-angle rate ``lr_actions=0.1`` the angles, trained while the policy is still uniform, shrink to
    about 0 within 500 steps; no action then earns any reward and the policy stays at chance. The
    reference README's ``gamma=10`` with ``lr_actions`` at the network rate (1e-3) finds the actions: with
    ``planes="factor"`` the policy matched the true actions on every transition after 1500 steps; with
    ``planes="all"`` after 4000 steps every group action rotated one plane (purity 0.999) and the policy
    matched the true action on 77% of transitions.
    """

    ddp_unsupported = ("its policy statistics (the policy_entropy and action_marginal buffers) are running "
                       "averages updated from each rank's own batch, so the ranks' models would drift apart")

    @dataclass
    class Config(ForwardVAE.Config):
        """Painter et al.'s CLI defaults: latent 4, batch 128, Adam 1e-3, β 1, γ = β = 1, group
        structure ``c+ c-``, group-angle lr 0.1, policy lr = lr, entropy weight 0.01, policy convs
        32-16-16."""

        gamma: float = 1.0
        lr_actions: float | None = 0.1
        group_structure: tuple[str, ...] = ("c+", "c-")
        entropy_weight: float = 0.01
        lr_policy: float | None = None
        policy_channels: tuple[int, ...] = (32, 16, 16)
        policy_loss: str = "reference"
        stats_momentum: float = 0.99

        def __post_init__(self):
            super().__post_init__()
            if not self.group_structure or any(g not in GROUP_SYMBOLS for g in self.group_structure):
                raise ValueError(f"group_structure must be a non-empty sequence of {tuple(GROUP_SYMBOLS)}, "
                                 f"got {self.group_structure!r}")
            if not self.entropy_weight >= 0:
                raise ValueError(f"entropy_weight must be >= 0, got {self.entropy_weight}")
            if self.lr_policy is not None and not self.lr_policy > 0:
                raise ValueError(f"lr_policy must be a positive float or None, got {self.lr_policy}")
            check_widths("policy_channels", self.policy_channels)
            if self.policy_loss not in POLICY_LOSSES:
                raise ValueError(f"policy_loss must be one of {POLICY_LOSSES}, got {self.policy_loss!r}")
            if not 0 <= self.stats_momentum < 1:
                raise ValueError(f"stats_momentum must be in [0, 1), got {self.stats_momentum}")

    has_dynamics = False
    # No mapping from the model's group actions to the environment's: frames are reconstructed.
    transition = RepresentationModel.transition
    predict = RepresentationModel.predict

    def __init__(self, env, config: Config):
        VAE.__init__(self, env, config)  # ForwardVAE's own init needs labelled discrete actions
        gs, planes = config.group_structure, config.latent_dim // 2
        num_actions = len(gs) * planes
        self.action_names = tuple(f"{gs[k % len(gs)]}{k // len(gs)}" for k in range(num_actions))
        self.action_factors = tuple(k // len(gs) for k in range(num_actions))
        sign = torch.tensor([GROUP_SYMBOLS[gs[k % len(gs)]] for k in range(num_actions)])
        self.angles = nn.Parameter(torch.rand(num_actions, planes) * config.angle_init * sign[:, None])
        if config.planes == "factor":
            mask = torch.zeros(num_actions, planes)
            mask[torch.arange(num_actions), torch.tensor(self.action_factors)] = 1.0
        else:
            mask = torch.ones(num_actions, planes)
        self.register_buffer("plane_mask", mask)
        self.policy = PairPolicy(self.observation_shape, num_actions, config.policy_channels, config.mlp_hidden)
        # Running (exponential) averages of the policy's per-transition entropy and action marginal.
        self.register_buffer("policy_entropy", torch.tensor(math.log(num_actions)))
        self.register_buffer("action_marginal", torch.full((num_actions,), 1.0 / num_actions))
        if len(self.observation_shape) == 3:
            self.policy.to(memory_format=torch.channels_last)

    def policy_probs(self, obs_now: torch.Tensor, obs_next: torch.Tensor) -> torch.Tensor:
        """Policy over the group actions for observation pairs (uint8 or float): ``[N, K]``."""
        return self.policy(observations_to_float(obs_now), observations_to_float(obs_next))

    def apply_actions(self, z: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        """``ρ(a) z`` for latents ``[N, n]`` and group-action indices ``[N]``."""
        return (self.action_matrices()[0][actions] @ z.unsqueeze(-1)).squeeze(-1)

    def loss(self, batch: Trajectory, step: int, generator: torch.Generator | None = None) -> LossOutput:
        c = self.config
        total, terms, target, z_now, mean_next = self.elbo_and_pairs(batch, generator)
        if z_now is not None:
            probs = self.policy_probs(batch.obs[:, :-1].flatten(0, 1), batch.obs[:, 1:].flatten(0, 1))
            actions = sample_actions(probs, generator)
            z_next = self.apply_actions(z_now, actions)
            distance = (z_next - mean_next).square().sum(-1)
            # Reward: negative prediction loss, baselined by the prediction loss of taking no action.
            reward = ((z_now - mean_next).square().sum(-1) - distance).detach()
            chosen = probs.gather(1, actions[:, None])[:, 0]
            terms["policy"] = reinforce_loss(chosen, reward, c.policy_loss)
            entropy = categorical_entropy(probs).mean()
            terms["policy_entropy"] = entropy
            terms["reward"] = reward.mean()
            forward = self.forward_terms(z_next, mean_next, target, len(batch.obs), terms)
            total = total + c.gamma * forward + terms["policy"] - c.entropy_weight * entropy
            if self.training:
                with torch.no_grad():
                    m = c.stats_momentum
                    self.policy_entropy.mul_(m).add_((1 - m) * entropy.detach())
                    self.action_marginal.mul_(m).add_((1 - m) * probs.detach().mean(0))
        return LossOutput(total, terms)

    def parameter_groups(self) -> list[dict]:
        policy = list(self.policy.parameters())
        ids = {id(p) for p in policy} | {id(self.angles)}
        nets = [p for p in self.parameters() if id(p) not in ids]
        c = self.config
        return [{"params": nets, "lr": c.lr},
                {"params": policy, "lr": c.lr if c.lr_policy is None else c.lr_policy},
                {"params": [self.angles], "lr": c.lr if c.lr_actions is None else c.lr_actions}]

    def structure_scores(self) -> dict[str, float]:
        """ForwardVAE's rotation scores for every learned group action (``rotation_purity/<c+0>`` ...:
        the share of its rotation in its dominant plane; ``plane_sharing``/``plane_disjoint`` group the
        actions by the latent pair the group structure assigns them), plus the running averages of the
        policy's per-transition entropy (``policy_entropy``, nats), of the entropy of its action marginal
        (``policy_marginal_entropy``) and the marginal itself (``action_frequency/<action>``)."""
        scores = super().structure_scores()
        scores["policy_entropy"] = float(self.policy_entropy)
        scores["policy_marginal_entropy"] = float(categorical_entropy(self.action_marginal))
        scores.update({f"action_frequency/{a}": float(p) for a, p in zip(self.action_names, self.action_marginal)})
        return scores

"""RepresentationModel: the interface every registered model implements."""
from __future__ import annotations

import abc
from dataclasses import dataclass, field
from typing import ClassVar

import torch
from torch import nn

from dynrep.checks import check_int
from dynrep.data.trajectory import Trajectory
from dynrep.models.nets import ARCHITECTURES, DECODERS, MLP_ACTIVATIONS, build_decoder, build_encoder


def check_widths(name: str, widths, *, allow_empty: bool = False) -> None:
    """ValueError unless ``widths`` is a sequence of positive ints (layer sizes), non-empty unless allowed."""
    if not isinstance(widths, (list, tuple)) or (not widths and not allow_empty) or \
            any(isinstance(w, bool) or not isinstance(w, int) or w < 1 for w in widths):
        kind = "a sequence" if allow_empty else "a non-empty sequence"
        raise ValueError(f"{name} must be {kind} of positive ints, got {widths!r}")


@dataclass
class ModelConfig:
    """Options shared by every model; each model nests a subclass with its own defaults.

    Attributes:
        latent_dim: size of the representation.
        batch_size: episodes per training step.
        episode_length: actions per training episode (0 = independent frames).
        lr: Adam learning rate (models may give parts their own rates).
        weight_decay: L2 penalty ``weight_decay * ||W||^2 / 2`` on the weight matrices and conv kernels
            (parameters with >= 2 dims; biases and scales are not decayed), added to their gradients by
            Adam (its coupled ``weight_decay``: the gradient of a TensorFlow ``l2_regularizer`` in the loss).
        lr_decay_rate, lr_decay_steps: step decay of every parameter group's learning rate, multiplied by
            ``lr_decay_rate ** (step // lr_decay_steps)`` at optimiser step ``step`` (TensorFlow's staircase
            ``exponential_decay``); ``lr_decay_steps`` None: constant rates.
        max_action_magnitude: actions of training episodes have magnitudes ``1..max``.
        channels: conv channels per stride-2 layer (image observations).
        hidden: width of the fully connected layer after the conv stack.
        mlp_hidden: hidden widths of the MLP used for vector observations.
        mlp_activation: its hidden activation, ``"relu"``, ``"leaky_relu"`` (LeakyReLU(0.2)) or ``"elu"``.
        architecture: a named conv stack of the references (``nets.ARCHITECTURES``: ``burgess``,
            ``kim``, ``montero``, ``abdi``) that sets ``channels`` and ``hidden``; ``None`` keeps them.
        decoder: ``"mirror"`` (transposed convs mirroring the encoder) or ``"spatial_broadcast"``.
    """

    latent_dim: int = 10
    batch_size: int = 64
    episode_length: int = 0
    lr: float = 1e-3
    weight_decay: float = 0.0
    lr_decay_rate: float = 1.0
    lr_decay_steps: int | None = None
    max_action_magnitude: int = 1
    channels: tuple[int, ...] = (32, 32, 64, 64)
    hidden: int = 256
    mlp_hidden: tuple[int, ...] = (64,)
    mlp_activation: str = "relu"
    architecture: str | None = None
    decoder: str = "mirror"

    #: Smallest latent size the model accepts.
    min_latent_dim: ClassVar[int] = 1

    def __post_init__(self):
        if self.architecture is not None:
            if self.architecture not in ARCHITECTURES:
                raise ValueError(f"architecture must be None or one of {sorted(ARCHITECTURES)}, "
                                 f"got {self.architecture!r}")
            self.channels, self.hidden = ARCHITECTURES[self.architecture]
        if self.decoder not in DECODERS:
            raise ValueError(f"decoder must be one of {DECODERS}, got {self.decoder!r}")
        check_int("latent_dim", self.latent_dim, self.min_latent_dim)
        check_int("batch_size", self.batch_size, 1)
        check_int("episode_length", self.episode_length, 0)
        check_int("max_action_magnitude", self.max_action_magnitude, 1)
        check_int("hidden", self.hidden, 1)
        check_widths("channels", self.channels)
        check_widths("mlp_hidden", self.mlp_hidden, allow_empty=True)
        if self.mlp_activation not in MLP_ACTIVATIONS:
            raise ValueError(f"mlp_activation must be one of {MLP_ACTIVATIONS}, got {self.mlp_activation!r}")
        if not (isinstance(self.lr, (int, float)) and self.lr > 0):
            raise ValueError(f"lr must be a positive float, got {self.lr!r}")
        if isinstance(self.weight_decay, bool) or not (isinstance(self.weight_decay, (int, float))
                                                       and self.weight_decay >= 0):
            raise ValueError(f"weight_decay must be a float >= 0, got {self.weight_decay!r}")
        if isinstance(self.lr_decay_rate, bool) or not (isinstance(self.lr_decay_rate, (int, float))
                                                        and 0 < self.lr_decay_rate <= 1):
            raise ValueError(f"lr_decay_rate must be a float in (0, 1], got {self.lr_decay_rate!r}")
        steps = self.lr_decay_steps
        if steps is not None and (isinstance(steps, bool) or not isinstance(steps, int) or steps < 1):
            raise ValueError(f"lr_decay_steps must be None or an integer >= 1, got {steps!r}")


@dataclass
class SequenceConfig(ModelConfig):
    """Defaults shared by the models of the mechanism-sparsity study (specs/causal.md 1.2, 1.4): 10 latents,
    batch 1024, windows of consecutive frames (``episode_length=1``: ``x^{t-1}, a^{t-1}, x^t``) and the
    6x512 LeakyReLU(0.2) MLPs. Listed first among a config's bases (``class Config(SequenceConfig,
    VAE.Config)``) so that these defaults win."""

    latent_dim: int = 10
    batch_size: int = 1024
    episode_length: int = 1
    mlp_hidden: tuple[int, ...] = (512,) * 6
    mlp_activation: str = "leaky_relu"

    def __post_init__(self):
        super().__post_init__()
        if self.episode_length < 1:
            raise ValueError(f"episode_length must be >= 1: the model trains on windows of consecutive frames "
                             f"(x^(t-1), a^(t-1), x^t), got {self.episode_length!r}")


def require_discrete_actions(env, model: str) -> None:
    """ValueError unless ``env`` has at least one discrete action (models that learn one map per action)."""
    if not env.actions.discrete or env.actions.n == 0:
        raise ValueError(f"{model} needs discrete actions; {type(env).__name__} has "
                         f"{'continuous' if not env.actions.discrete else 'no'} actions")


@dataclass
class Posterior:
    """Encoder output: ``mean [B, latent_dim]`` and, for stochastic encoders, ``logvar``."""

    mean: torch.Tensor
    logvar: torch.Tensor | None = None


@dataclass
class LossOutput:
    """``total`` is what the optimiser minimises; ``terms`` are scalars logged in the history."""

    total: torch.Tensor
    terms: dict[str, torch.Tensor] = field(default_factory=dict)


def observations_to_float(obs: torch.Tensor) -> torch.Tensor:
    """uint8 images -> float in [0, 1]; float observations are returned as they are."""
    return obs.float().div_(255.0) if obs.dtype == torch.uint8 else obs.float()


class RepresentationModel(nn.Module, abc.ABC):
    """Base class of every registered model.

    Subclasses nest a ``Config`` dataclass (a :class:`ModelConfig` subclass), are
    registered with ``@register_model(name)`` and implement :meth:`encode` and
    :meth:`loss`. The base builds ``self.encoder`` (to ``encoder_outputs()`` numbers)
    and ``self.decoder`` from the environment's observation shape.
    """

    Config: ClassVar[type[ModelConfig]] = ModelConfig
    model_name: ClassVar[str] = ""
    #: True for models with a latent transition (``transition``, open-loop ``predict``).
    has_dynamics: ClassVar[bool] = False
    #: False for encoder-only models (contrastive ones): no ``self.decoder``, no reconstructions.
    has_decoder: ClassVar[bool] = True
    #: Why the model cannot train under DDP (torchrun), or None: then each rank's loss must be the model's
    #: estimator on its share of the batch (see :mod:`dynrep.training.distributed`).
    ddp_unsupported: ClassVar[str | None] = None

    def __init__(self, env, config: ModelConfig):
        super().__init__()
        if not isinstance(config, self.Config):
            raise TypeError(f"{type(self).__name__} needs a {self.Config.__name__}, got {type(config).__name__}")
        self.config = config
        self.observation_shape = tuple(env.observation_shape)
        self.action_names = tuple(env.actions.names)
        self.action_factors = tuple(env.actions.factor_of)
        self.encoder, self.decoder = self.build_networks()
        if len(self.observation_shape) == 3:
            # oneDNN convolutions run ~10-30% faster on channels-last weights (measured in benchmarks/).
            self.to(memory_format=torch.channels_last)

    # -- what subclasses provide -------------------------------------------------------
    def encoder_outputs(self) -> int:
        """Number of encoder outputs (``latent_dim`` for deterministic encoders)."""
        return self.config.latent_dim

    def decoder_inputs(self) -> int:
        """Size of the decoder's input vector (``latent_dim`` unless the model decodes something else)."""
        return self.config.latent_dim

    def code_size(self) -> int:
        """Size of the codes :meth:`representation` returns and :meth:`decode` takes (``latent_dim``)."""
        return self.config.latent_dim

    def build_networks(self) -> tuple[nn.Module, nn.Module | None]:
        """``(encoder, decoder)``, called once by ``__init__``: the config's conv (images) or MLP (vectors)
        nets from ``encoder_outputs()`` and ``decoder_inputs()``, no decoder if not ``has_decoder``.
        Override to build other networks (the config is set, subclass attributes are not yet)."""
        c = self.config
        encoder = build_encoder(self.observation_shape, self.encoder_outputs(), c.channels, c.hidden,
                                c.mlp_hidden, c.mlp_activation)
        decoder = build_decoder(self.decoder_inputs(), self.observation_shape, c.channels, c.hidden, c.mlp_hidden,
                                c.decoder, c.mlp_activation) if self.has_decoder else None
        return encoder, decoder

    @abc.abstractmethod
    def encode(self, obs: torch.Tensor) -> Posterior:
        """Posterior of observations ``[B, *obs_shape]`` (uint8 or float)."""

    @abc.abstractmethod
    def loss(self, batch: Trajectory, step: int, generator: torch.Generator | None = None) -> LossOutput:
        """Training loss of one batch at optimiser step ``step``."""

    # -- shared behaviour ----------------------------------------------------------------
    def representation(self, obs: torch.Tensor) -> torch.Tensor:
        """What metrics read: the posterior mean ``[B, latent_dim]``."""
        return self.encode(obs).mean

    def decode_logits(self, z: torch.Tensor) -> torch.Tensor:
        """Decoder logits ``[B, *obs_shape]`` of latents ``[B, latent_dim]``."""
        if self.decoder is None:
            raise ValueError(f"model {self.model_name!r} has no decoder (has_decoder is False): it cannot decode, "
                             "reconstruct or traverse latents")
        return self.decoder(z)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Observations in [0, 1], ``[B, *obs_shape]``, of latents ``[B, latent_dim]``."""
        return torch.sigmoid(self.decode_logits(z))

    def transition(self, z: torch.Tensor, actions: torch.Tensor,
                   magnitudes: torch.Tensor | None = None) -> torch.Tensor:
        """Next latents ``[B, latent_dim]`` after ``actions [B]``; only for models with dynamics."""
        raise ValueError(f"model {self.model_name!r} has no latent dynamics (has_dynamics is False)")

    def reconstruct(self, obs: torch.Tensor) -> torch.Tensor:
        """``decode(representation(obs))``: frames ``[B, *obs_shape]`` in [0, 1]."""
        return self.decode(self.representation(obs))

    def predict(self, batch: Trajectory) -> torch.Tensor:
        """Predicted frames ``[B, T+1, *obs_shape]`` in [0, 1] for a batch of episodes.

        Models with dynamics roll out open-loop from the first frame; others
        reconstruct each frame independently.
        """
        return self.reconstruct(batch.obs.flatten(0, 1)).view(*batch.obs.shape[:2], *self.observation_shape)

    def traverse(self, obs: torch.Tensor, num_frames: int) -> tuple[torch.Tensor, list[str]]:
        """Latent traversal from one observation ``[1, *obs_shape]``.

        Returns frames ``[R, num_frames, *obs_shape]`` in [0, 1] (one row per latent
        dimension, its value swept over [-3, 3] around the mean) and the row labels.
        """
        check_int("num_frames", num_frames, 2)
        z = self.representation(obs)[0]
        dims = z.shape[0]
        values = torch.linspace(-3.0, 3.0, num_frames, device=z.device)
        grid = z.expand(dims, num_frames, dims).clone()
        grid[torch.arange(dims), :, torch.arange(dims)] = values
        frames = self.decode(grid.reshape(-1, dims))
        return frames.view(dims, num_frames, *self.observation_shape), [f"z{i}" for i in range(dims)]

    def parameter_groups(self) -> list[dict]:
        """Optimiser parameter groups; override to give parts their own learning rates."""
        return [{"params": list(self.parameters()), "lr": self.config.lr}]

    def parameter_groups_with(self, params: list[nn.Parameter], lr: float | None, **options) -> list[dict]:
        """Two optimiser groups: every parameter but ``params`` at the config's ``lr``, then ``params`` at
        ``lr`` (None: the config's) with further Adam ``options`` (e.g. ``betas``)."""
        ids = {id(p) for p in params}
        rest = [p for p in self.parameters() if id(p) not in ids]
        return [{"params": rest, "lr": self.config.lr},
                {"params": list(params), "lr": self.config.lr if lr is None else lr, **options}]

    def structure_scores(self) -> dict[str, float]:
        """Model-specific evaluation scores (e.g. rotation purity); empty by default."""
        return {}

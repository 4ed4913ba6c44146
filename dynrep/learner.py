"""RepresentationLearner: one object that joins an environment, a model and a trainer."""
from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from dynrep.checks import check_int
from dynrep.config import config_to_dict
from dynrep.data.download import DownloadError
from dynrep.data.trajectory import Trajectory
from dynrep.envs.base import Environment
from dynrep.envs.registry import make_env
from dynrep.envs.splits import SplitEnvironment
from dynrep.inputs import as_actions, as_latents, as_observations
from dynrep.metrics.compute import compute, flatten_scores, metric_names
from dynrep.metrics.dynamics import frame_bce, latent_prediction_error, per_frame_bce
from dynrep.metrics.generalisation import generalisation_report
from dynrep.metrics.graphs import permute_graph, shd
from dynrep.metrics.sampling import auto_batch_size
from dynrep.models.registry import build_model
from dynrep.training import distributed
from dynrep.training.callbacks import Callback, Checkpoint, NonFiniteLossError, ProgressBar
from dynrep.training.checkpoint import (CheckpointError, check_destination, load_checkpoint, require_safetensors,
                                       safetensors_bytes, save_checkpoint)
from dynrep.training.logging import JsonlLogger, metrics_path
from dynrep.training.signals import TrainingInterrupted
from dynrep.training.trainer import Trainer
from dynrep.viz import gif, plots

#: Independent random streams derived from the learner's seed (training uses the seed itself).
_TEST_STREAM, _EVAL_STREAM, _ANIMATE_STREAM = 1, 2, 3
ANIMATION_KINDS = ("rollout", "traversal")
#: k of the k-step prediction errors ``evaluate`` reports by default.
DEFAULT_PREDICTION_STEPS = (1, 5, 10)
#: Frames per encoder / decoder call in :meth:`RepresentationLearner.evaluate`'s model scores on a CPU, where
#: it bounds the demo's peak memory (479 MB against the 500 MB target of issue 18); see :func:`eval_chunk`.
EVAL_CHUNK = 64


def eval_chunk(obs_shape: tuple[int, ...], device: torch.device) -> int:
    """Frames of ``obs_shape`` per network call in ``evaluate``'s model scores on ``device``: :data:`EVAL_CHUNK`
    on a CPU, elsewhere (a GPU, where 64 frames is a small batch) the metrics' batch,
    :func:`~dynrep.metrics.sampling.auto_batch_size` (the largest that fits a share of the free memory)."""
    return EVAL_CHUNK if device.type == "cpu" else auto_batch_size(obs_shape, device)


def held_out_env(env: Environment) -> Environment:
    """The test subset of a world with a train/test split (``env.subset == "train"``, e.g. toy-nn,
    Pendulum, Flow), built from ``env.get_config()``; any other environment as it is."""
    if getattr(env, "subset", None) != "train":
        return env
    return type(env)(**{**env.get_config(), "subset": "test"})


def _episode_chunks(batch: Trajectory, size: int) -> list[Trajectory]:
    """``batch`` cut into consecutive batches of at most ``size`` episodes (views, no copies)."""
    return [Trajectory(batch.obs[i:i + size], batch.actions[i:i + size], batch.factors[i:i + size],
                       None if batch.magnitudes is None else batch.magnitudes[i:i + size])
            for i in range(0, batch.batch_size, size)]


def resolve_device(device: str | torch.device) -> torch.device:
    """``"auto"`` -> CUDA when available (under torchrun GPU ``LOCAL_RANK``), else CPU; anything else is
    checked by torch, and a CUDA device that this machine lacks is a ValueError saying so."""
    if isinstance(device, str) and device == "auto":
        return distributed.default_device()
    try:
        resolved = torch.device(device)
    except (RuntimeError, TypeError) as err:
        raise ValueError(f"device must be 'auto', 'cpu', 'cuda' or 'cuda:N', got {device!r}") from err
    if resolved.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0 or (resolved.index or 0) >= count:
            have = f"{count} CUDA device(s)" if count else (
                "no CUDA device" if torch.backends.cuda.is_built() else "a torch build without CUDA")
            raise ValueError(f"device {str(device)!r} is not available: this machine has {have}; use device "
                             "'cpu' or 'auto'")
    return resolved


@dataclass
class TestResult:
    """Open-loop test episodes.

    Attributes:
        true_frames: ground truth ``[N, T+1, H, W, C]`` uint8.
        predicted_frames: the model's frames ``[N, T+1, H, W, C]`` uint8 (open-loop
            rollout from the first frame for models with dynamics, per-frame
            reconstruction otherwise).
        step_errors: ``[T+1]`` mean binary cross-entropy per step over episodes and elements.
        actions: ``[N, T]`` actions taken; factors: ``[N, T+1, K]`` true factors.
    """

    true_frames: np.ndarray
    predicted_frames: np.ndarray
    step_errors: np.ndarray
    actions: np.ndarray
    factors: np.ndarray


class RepresentationLearner:
    """Train, test, evaluate, animate, save and load any registered model on any environment.

    Args:
        env: an :class:`~dynrep.envs.base.Environment` or a registered name (``"gridworld"``).
        model: a registered model name (see :func:`dynrep.list_models`).
        seed: seeds weight initialisation, the training data stream and the model's noise.
        device: ``"auto"`` (CUDA when present), ``"cpu"``, ``"cuda"``...
        compile: run each training step's loss (the forward pass) through ``torch.compile`` (off by default;
            the first steps then take the compilation time; checkpoints are the same as without).
        autocast: ``"bf16"``: each training step's loss under ``torch.autocast`` to bfloat16 (parameters,
            gradients and optimiser in float32); None (default): float32 throughout. See
            :class:`~dynrep.training.trainer.Trainer`.
        **config: overrides of the model's ``Config`` (``latent_dim=4``, ``lr=1e-3``...).

    Example::

        learner = RepresentationLearner(GridWorld(size=5), model="rotation", latent_dim=4, seed=0)
        learner.train(steps=3000)
        learner.animate("rollout.gif")
    """

    def __init__(self, env: Environment | str, model: str = "rotation", *, seed: int = 0,
                 device: str | torch.device = "auto", compile: bool = False, autocast: str | None = None,
                 **config: Any):
        self.env = make_env(env) if isinstance(env, str) else env
        if not isinstance(self.env, Environment):
            raise TypeError(f"env must be an Environment or a registered name, got {type(env).__name__}")
        self.seed = check_int("seed", seed, 0)
        self.device = resolve_device(device)
        with torch.random.fork_rng(devices=[]):  # seeded initialisation without touching global state
            torch.manual_seed(self.seed)
            self.model = build_model(model, self.env, **config)
        self.model.to(self.device).eval()
        self.trainer = Trainer(self.model, self.env, seed=self.seed, device=self.device, compile=compile,
                               autocast=autocast)
        #: Identifies this training run in its checkpoints (kept by :meth:`load`): saving over a checkpoint of
        #: another run needs ``overwrite=True``.
        self.run_id: str | None = uuid.uuid4().hex

    # -- training ----------------------------------------------------------------------
    @property
    def history(self) -> dict[str, list[float]]:
        """Every logged loss term per optimiser step, ``"loss"`` being the total."""
        return self.trainer.history

    @property
    def step(self) -> int:
        """Optimiser steps taken so far (across ``train`` calls and checkpoints)."""
        return self.trainer.step

    def train(self, steps: int, *, time_limit: float | None = None, progress: bool = True,
              checkpoint_dir: str | Path | None = None, checkpoint_every: int | None = None,
              overwrite: bool = False, log_every: int | None = 10, safetensors: bool = False,
              callbacks: Sequence[Callback] = (), sync_every: int | None = None) -> dict[str, list[float]]:
        """Run ``steps`` optimiser steps (or until ``time_limit`` seconds pass).

        With ``checkpoint_dir`` a checkpoint is written every ``checkpoint_every`` steps and when training
        stops for any reason: the steps are done, the time limit, Ctrl-C or SIGTERM (then
        :class:`~dynrep.training.signals.TrainingInterrupted` is raised) or a non-finite loss (the last
        finite state is saved, then :class:`~dynrep.training.callbacks.NonFiniteLossError` is raised).
        ``checkpoint_dir`` is checked before the first step (:func:`~dynrep.training.checkpoint.check_destination`):
        it may not hold other files or, unless ``overwrite``, another run's checkpoint. With ``checkpoint_dir``
        the loss terms, learning rates and steps/s of every ``log_every``-th step (None: none) are also appended
        to ``<checkpoint_dir>.metrics.jsonl`` (:class:`~dynrep.training.logging.JsonlLogger`); with ``safetensors``
        each checkpoint also holds ``model.safetensors`` (:meth:`save`). ``sync_every``: steps between the
        host's waits for the device (None: 1 on CPU, 10 on a GPU; the same results for every value: see
        :meth:`~dynrep.training.trainer.Trainer.fit`). Returns :attr:`history`.
        """
        cbs = list(callbacks)
        if progress:
            cbs.append(ProgressBar())
        if checkpoint_dir is not None:
            if safetensors:
                require_safetensors()  # now, not at the first save
            # the weights, Adam's two moments (and the weights again in model.safetensors)
            size = (3 + safetensors) * sum(t.numel() * t.element_size() for t in self.model.state_dict().values())
            check_destination(checkpoint_dir, run_id=self.run_id, overwrite=overwrite, size=size)
            cbs.append(Checkpoint(lambda: self.save(checkpoint_dir, overwrite=overwrite, safetensors=safetensors),
                                  checkpoint_every))
            if log_every is not None:
                cbs.append(JsonlLogger(metrics_path(checkpoint_dir), every=check_int("log_every", log_every, 1)))
        elif checkpoint_every is not None or safetensors:
            raise ValueError(f"{'checkpoint_every' if checkpoint_every is not None else 'safetensors'} needs "
                             "checkpoint_dir")
        saved = f"; the checkpoint in {checkpoint_dir} holds" if checkpoint_dir is not None else \
            "; nothing was saved (no checkpoint_dir), the learner keeps"
        try:
            return self.trainer.fit(steps, time_limit=time_limit, callbacks=cbs, sync_every=sync_every)
        except TrainingInterrupted as err:
            raise TrainingInterrupted(f"{err}{saved} its step-{self.step} state", err.signal_name,
                                      err.step) from None
        except NonFiniteLossError as err:
            if checkpoint_dir is None:
                raise
            raise NonFiniteLossError(f"{err}{saved} that state") from None

    # -- inference ---------------------------------------------------------------------
    # Inputs follow dynrep.inputs: uint8 / integer pixels 0..255 or float intensities in [0, 1] for image
    # worlds, real vectors for vector worlds, integer actions in [0, n); anything else is a ValueError.
    @torch.no_grad()
    def encode(self, obs: np.ndarray | torch.Tensor, batch_size: int = 256) -> torch.Tensor:
        """Representations ``[B, model.code_size()]`` (on CPU) of observations ``[B, *obs_shape]``: uint8 (or
        integer) pixels in 0..255 or float intensities in [0, 1] for image worlds, real numbers for vector
        worlds (see :mod:`dynrep.inputs`)."""
        obs = as_observations(obs, self.env, self.device)
        batch_size = check_int("batch_size", batch_size, 1)
        return torch.cat([self.model.representation(chunk).cpu() for chunk in obs.split(batch_size)])

    @torch.no_grad()
    def decode(self, z: np.ndarray | torch.Tensor) -> torch.Tensor:
        """Observations in [0, 1] ``[B, *obs_shape]`` (on CPU) of codes ``[B, model.code_size()]``."""
        return self.model.decode(as_latents(z, self.model.code_size(), self.device)).cpu()

    @torch.no_grad()
    def rollout(self, obs: np.ndarray | torch.Tensor, actions: np.ndarray | torch.Tensor) -> torch.Tensor:
        """Open-loop prediction: frames ``[B, T+1, *obs_shape]`` in [0, 1] from first observations
        ``[B, *obs_shape]`` and integer actions ``[B, T]`` in ``[0, env.actions.n)`` (models with dynamics
        only)."""
        if not self.model.has_dynamics:
            raise ValueError(f"model {self.model.model_name!r} has no latent dynamics to roll out; use a model "
                             "with a transition such as 'rotation' or 'forward_vae'")
        obs = as_observations(obs, self.env, self.device)
        actions = as_actions(actions, self.env, len(obs), self.device)
        z = self.model.representation(obs)
        frames = self.model.decode(self._latent_rollout(z, actions).flatten(0, 1))
        return frames.view(len(z), actions.shape[1] + 1, *self.env.observation_shape).cpu()

    @torch.no_grad()
    def intervene(self, obs: np.ndarray | torch.Tensor, interventions: dict[str, Any]) -> torch.Tensor:
        """Images ``[B, *obs_shape]`` in [0, 1] (on CPU) of observations ``[B, *obs_shape]`` under
        ``do(variable = value)`` for causal models (``icm_vae``): ``interventions`` maps variable names
        (``env.variables``) to values in label units, scalars or ``[B]`` arrays; the model recomputes the
        variables' descendants. ``learner.animate(path, "traversal")`` sweeps each variable this way."""
        if not hasattr(self.model, "intervene"):
            raise ValueError(f"model {self.model.model_name!r} has no causal mechanisms to intervene on; "
                             "use a causal model such as 'icm_vae'")
        values = {name: torch.as_tensor(v, dtype=torch.float32, device=self.device)
                  if isinstance(v, (np.ndarray, torch.Tensor)) else v for name, v in interventions.items()}
        return self.model.intervene(as_observations(obs, self.env, self.device), values).cpu()

    def _latent_rollout(self, z: torch.Tensor, actions: torch.Tensor,
                        magnitudes: torch.Tensor | None = None) -> torch.Tensor:
        """Open-loop latents ``[B, T+1, D]`` from ``z [B, D]`` through ``actions [B, T]``."""
        latents = [z]
        for t in range(actions.shape[1]):
            latents.append(self.model.transition(latents[-1], actions[:, t],
                                                 None if magnitudes is None else magnitudes[:, t]))
        return torch.stack(latents, 1)

    def _to_frames(self, obs: np.ndarray) -> np.ndarray:
        """Displayable frames ``[N, T, H, W, C]`` uint8 of observations ``[N, T, *obs_shape]``."""
        images = self.env.observation_to_image(obs.reshape(-1, *obs.shape[2:]))
        return images.reshape(*obs.shape[:2], *images.shape[1:])

    def _episodes(self, num_episodes: int, episode_length: int, stream: int, seed: int | None) -> Trajectory:
        rng = np.random.default_rng([self.seed if seed is None else seed, stream])
        return self.env.sample_trajectories(num_episodes, episode_length, rng)

    @torch.no_grad()
    def test(self, num_episodes: int = 8, episode_length: int = 20, seed: int | None = None) -> TestResult:
        """Run the model on fresh random episodes; see :class:`TestResult`."""
        check_int("num_episodes", num_episodes, 1)
        check_int("episode_length", episode_length, 0)
        batch = self._episodes(num_episodes, episode_length, _TEST_STREAM, seed)
        predicted = self.model.predict(batch.to(self.device)).cpu()
        errors = frame_bce(batch.obs.flatten(0, 1), predicted.flatten(0, 1)).view(num_episodes, -1).mean(0)
        return TestResult(
            true_frames=self._to_frames(batch.obs.numpy()), predicted_frames=self._to_frames(predicted.numpy()),
            step_errors=errors.numpy(), actions=batch.actions.numpy(), factors=batch.factors.numpy())

    @torch.no_grad()
    def evaluate(self, metrics: Sequence[str] | None = None, *, num_train: int | None = None,
                 num_test: int | None = None, num_episodes: int = 64, episode_length: int = 10,
                 prediction_steps: Sequence[int] | None = None, seed: int | None = None,
                 options: dict[str, dict[str, Any]] | None = None,
                 metric_env: Environment | None = None) -> dict[str, float]:
        """Scores as a flat ``dict[str, float]``.

        Model scores: ``reconstruction_error``, the mean BCE of ``decode(encode(x))`` over
        ``num_episodes x (episode_length + 1)`` frames (``reconstruction_mse``, the mean squared
        error, for real-valued vector observations; nothing for encoder-only models). Models with
        dynamics add, for each ``k`` of ``prediction_steps`` (default: those of 1, 5, 10 within ``episode_length``),
        ``prediction_error/<k>``, the BCE of the open-loop prediction ``k`` steps after the
        encoded first frame, ``latent_prediction_error/<k>``, the mean squared distance between the
        latent predicted ``k`` steps ahead and the encoding of the true frame (it can be large while
        ``prediction_error`` is ~0 when the decoder gives several latents the same image: e.g. a rotation
        model whose action turns by half the world's angle, π/5 for a period of 5, decodes z and z
        turned by π alike, a double cover, and rollouts drift to the half the encoder does not use),
        and model-specific scores (for the rotation model: ``rotation_purity/<action>``,
        ``rotation_purity_min``, ``rotation_eigen_purity/<action>``, ``plane_sharing``,
        ``plane_disjoint``, ``entanglement``).

        Representation metrics (:func:`dynrep.metrics.compute` on the model's representation, the
        encoder mean): ``metrics`` names them (``dynrep.metrics.list_metrics()``; one name as a string,
        ``"mig"``, is that metric); the default is
        :func:`dynrep.metrics.compute.default_metrics` of the environment (discrete-factor worlds:
        MIG, DCI, SAP, FactorVAE, β-VAE, Modularity; continuous ones: MCC); ``metrics=()`` skips
        them. Each float a metric returns is reported as ``<metric>/<key>`` (``mig`` as ``mig``). Under
        torchrun every rank must call ``evaluate`` with the same arguments: each encodes its share of the
        metrics' samples (:func:`dynrep.training.distributed.sharded`) and all get the same scores.
        ``num_train`` / ``num_test`` override every metric's sample sizes (reference defaults
        10,000 / 5,000; smaller is faster and noisier); ``options[name]`` is passed to that metric
        (e.g. ``options={"dci": {"mode": "fast"}}``; ``options={"mig": {"estimator": "chen"}}`` gives
        Chen et al.'s MIG, estimated from the encoder's Gaussians q(z|x), for models with a stochastic
        encoder). The metrics sample ``metric_env``, by default :func:`held_out_env` of the learner's
        environment (the test subset of worlds that have one: toy-nn, Pendulum, Flow; the environment
        itself otherwise).

        Models with learned causal graphs (``learned_graphs()``, e.g. mechanism sparsity) on worlds with
        true ones (``graph_z`` / ``graph_a``) add, once MCC has matched codes to factors,
        ``graph_z/shd``, ``graph_z/precision``, ``graph_z/recall`` (and ``graph_a/...``): the learned graph
        (σ(α) > 0.5) re-indexed by the MCC permutation (``P G Pᵀ`` for ``G^z``, ``P G`` for ``G^a``)
        against the true one (:func:`dynrep.metrics.graphs.shd`).
        """
        names = metric_names(metrics, self.env, options)
        check_int("num_episodes", num_episodes, 1)
        check_int("episode_length", episode_length, 0)
        if prediction_steps is None:
            prediction_steps = [k for k in DEFAULT_PREDICTION_STEPS if k <= episode_length]
        if self.model.has_dynamics:
            for k in prediction_steps:
                check_int("prediction_steps", k, 1, episode_length)
            batch = self._episodes(num_episodes, episode_length, _EVAL_STREAM, seed).to(self.device)
        else:  # the same number of frames, drawn as static samples (also for worlds with short episodes)
            batch = self._episodes(num_episodes * (episode_length + 1), 0, _EVAL_STREAM, seed).to(self.device)
        scores = self._model_scores(batch, prediction_steps)
        scores.update(self.model.structure_scores())
        metric_env = held_out_env(self.env) if metric_env is None else metric_env
        # Under torchrun each rank encodes its share of the metrics' samples (the same on every rank).
        representation, posterior = distributed.sharded(self.model.representation), distributed.sharded(self._posterior)
        for name in names:
            result = compute(name, metric_env, representation, seed=self.seed if seed is None else seed,
                             num_train=num_train, num_test=num_test, device=self.device,
                             posterior_fn=posterior, **(options or {}).get(name, {}))
            scores.update(flatten_scores(name, result))
            if name == "mcc" and (options or {}).get("mcc", {}).get("alignment", "none") == "none":
                scores.update(self._graph_scores(result["permutation"]))  # needs the permutation matching
        return scores

    def _model_scores(self, batch: Trajectory, prediction_steps: Sequence[int]) -> dict[str, float]:
        """The reconstruction and prediction scores of :meth:`evaluate` on ``batch`` (on the model's device).

        Frames go through the networks :func:`eval_chunk` at a time and are scored where they are
        (:func:`~dynrep.metrics.dynamics.frame_bce`): each frame is encoded once, its code serving the
        reconstruction (``decode(representation(x))``, the models' ``reconstruct``) and the latent rollout,
        and no decoded frame outlives its chunk."""
        if not (self.model.has_decoder or self.model.has_dynamics):
            return {}
        obs = batch.obs.flatten(0, 1)
        chunk_size = eval_chunk(tuple(obs.shape[1:]), self.device)
        chunks = obs.split(chunk_size)
        codes = [self.model.representation(chunk) for chunk in chunks]
        scores = {}
        if self.model.has_decoder and obs.dtype == torch.uint8:
            errors = torch.cat([frame_bce(chunk, self.model.decode(z)) for chunk, z in zip(chunks, codes)])
            scores["reconstruction_error"] = float(errors.mean())
        elif self.model.has_decoder:  # summed on the device, chunk after chunk: one read at the end
            squares = torch.zeros((), dtype=torch.float64, device=obs.device)
            for chunk, z in zip(chunks, codes):
                squares += (chunk - self.model.decode(z)).square_().sum(dtype=torch.float64)
            scores["reconstruction_mse"] = float(squares) / obs.numel()
        if self.model.has_dynamics:
            num_episodes, frames = batch.obs.shape[:2]
            per_chunk = max(1, chunk_size // frames)  # whole episodes: predict rolls each out from its first frame
            errors = torch.cat([frame_bce(part.obs.flatten(0, 1), self.model.predict(part).flatten(0, 1))
                                for part in _episode_chunks(batch, per_chunk)])
            errors = errors.view(num_episodes, frames).mean(0)
            scores.update({f"prediction_error/{k}": float(errors[k]) for k in prediction_steps})
            encoded = torch.cat(codes).view(num_episodes, frames, -1)
            predicted = self._latent_rollout(encoded[:, 0], batch.actions, batch.magnitudes)
            latent_errors = latent_prediction_error(predicted.cpu().numpy(), encoded.cpu().numpy())
            scores.update({f"latent_prediction_error/{k}": float(latent_errors[k]) for k in prediction_steps})
        return scores

    def _posterior(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(mean, logvar)`` ``[B, latent_dim]`` each of the model's Gaussian encoder (for Chen's MIG)."""
        posterior = self.model.encode(obs)
        if posterior.logvar is None:
            raise ValueError(f"model {self.model.model_name!r} has a deterministic encoder (no log-variance): "
                             "mig with estimator='chen' needs a Gaussian q(z|x); use estimator='histogram'")
        return posterior.mean, posterior.logvar

    def _graph_scores(self, permutation: np.ndarray) -> dict[str, float]:
        """SHD, precision and recall of the model's learned graphs against the environment's true ones."""
        scores = {}
        for key, (true, learned) in self.aligned_graphs(permutation).items():
            scores.update({f"{key}/{k}": v for k, v in shd(true, learned).items()
                           if k in ("shd", "precision", "recall")})
        return scores

    def aligned_graphs(self, permutation: np.ndarray) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """``{"graph_z" | "graph_a": (true, learned)}`` for every learned graph of the model that the
        environment also has, the learned one re-indexed into the true factors' order by the MCC
        ``permutation`` (``[K]`` code per true factor; see :func:`dynrep.metrics.graphs.permute_graph`)."""
        return {key: (np.asarray(getattr(self.env, key)),
                      permute_graph(learned, permutation, permute_columns=key == "graph_z"))
                for key, learned in self._learned_graphs().items()}

    def _learned_graphs(self) -> dict[str, np.ndarray]:
        """The model's learned graphs (``learned_graphs()``) that the environment has a true version of."""
        if not hasattr(self.model, "learned_graphs"):
            return {}
        return {key: graph for key, graph in self.model.learned_graphs().items() if hasattr(self.env, key)}

    @torch.no_grad()
    def generalisation_report(self, test_env: Environment, *, num_train: int = 10_000, num_test: int = 5_000,
                              seed: int | None = None, **options: Any) -> dict:
        """Lost-in-Latent-Space report: training-split environment (the learner's) vs held-out ``test_env``.

        Draws ``num_train`` frames of the learner's environment and ``num_test`` of ``test_env`` (e.g. the
        two halves of ``env.split(name)``), computes each frame's reconstruction BCE and code, and calls
        :func:`dynrep.metrics.generalisation_report` (``options`` go there, e.g. ``regressor="mlp"``,
        ``baseline="train_mean"``). A large reconstruction gap with good held-out alignment points at the
        decoder; poor held-out alignment points at the encoder.
        """
        if test_env.observation_shape != self.env.observation_shape:
            raise ValueError(f"test_env must have the learner's observation shape {self.env.observation_shape}, "
                             f"got {test_env.observation_shape}")
        rng = np.random.default_rng([self.seed if seed is None else seed, _EVAL_STREAM])
        parts = []
        sizes = check_int("num_train", num_train, 2), check_int("num_test", num_test, 2)
        for env, n in zip((self.env, test_env), sizes):
            errors, codes, factors = [], [], []
            for start in range(0, n, 256):
                batch = env.sample_trajectories(min(256, n - start), 0, rng)
                obs = batch.obs[:, 0].to(self.device)
                z = self.model.representation(obs)
                errors.append(per_frame_bce(obs.cpu().numpy(), self.model.decode(z).cpu().numpy()))
                codes.append(z.cpu().numpy())
                factors.append(batch.factors[:, 0].numpy())
            parts.append((np.concatenate(errors), np.concatenate(codes), np.concatenate(factors)))
        (train_err, train_codes, train_factors), (test_err, test_codes, test_factors) = parts
        return generalisation_report(train_err, test_err, train_codes, train_factors, test_codes, test_factors,
                                     **options)

    # -- pictures ----------------------------------------------------------------------
    @torch.no_grad()
    def animate(self, path: str | Path, kind: str = "rollout", *, num_episodes: int = 4, num_frames: int = 20,
                fps: float = 4.0, seed: int | None = None) -> Path:
        """Write a GIF to ``path`` and return the path.

        ``kind="rollout"``: ``num_episodes`` random episodes of ``num_frames - 1`` actions,
        ground truth and prediction side by side. ``kind="traversal"``: from one random
        frame, each action applied repeatedly (models with dynamics) or each latent
        dimension swept over [-3, 3] (others), one tile per action or dimension.
        """
        if kind not in ANIMATION_KINDS:
            raise ValueError(f"kind must be one of {ANIMATION_KINDS}, got {kind!r}")
        check_int("num_frames", num_frames, 2)
        if kind == "rollout":
            result = self.test(num_episodes=num_episodes, episode_length=num_frames - 1, seed=seed)
            return gif.write_rollout_gif(path, result.true_frames, result.predicted_frames, fps=fps)
        start = self._episodes(1, 0, _ANIMATE_STREAM, seed).obs[:, 0].to(self.device)
        frames, labels = gif.traversal_frames(self.model, self.env, start, num_frames)
        return gif.write_traversal_gif(path, frames, labels, fps=fps)

    def plot_training(self, path: str | Path) -> Path:
        """PNG of every loss term against the optimiser step."""
        return plots.plot_history(self.history, path)

    def plot_representation(self, path: str | Path) -> Path:
        """PNG heatmap of the learned action angles (rotation model)."""
        if not hasattr(self.model, "angles"):
            raise ValueError(f"model {self.model.model_name!r} has no action angles to plot")
        return plots.plot_rotation_angles(self.model.angles.detach().cpu().numpy(), self.model.action_names,
                                          self.model.config.latent_dim, path)

    @torch.no_grad()
    def plot_graphs(self, path: str | Path, *, num_samples: int = 10_000, seed: int | None = None) -> Path:
        """PNG of the true and the learned causal graphs side by side (each learned one re-indexed by the MCC
        matching on the held-out subset, edges where σ(α) > 0.5) and the MCC correlation matrix; for models
        with learned graphs (``mechanism_sparsity``) on worlds with true ones (toy-nn)."""
        if not self._learned_graphs():
            raise ValueError(f"model {self.model.model_name!r} on {type(self.env).__name__} has no learned graph "
                             "with a true counterpart (needs learned_graphs() and env.graph_z / env.graph_a)")
        result = compute("mcc", held_out_env(self.env), self.model.representation,
                         seed=self.seed if seed is None else seed, num_train=num_samples, device=self.device)
        return plots.plot_graphs(self.aligned_graphs(result["permutation"]), result["correlation"], path)

    # -- persistence -------------------------------------------------------------------
    def save(self, path: str | Path, overwrite: bool = False, safetensors: bool = False) -> Path:
        """Write a checkpoint directory (``config.json`` + ``state.pt``), atomically and safely beside other
        writers and readers (:func:`~dynrep.training.checkpoint.save_checkpoint`). ``path`` may be new, empty
        or a checkpoint of this run (:attr:`run_id`); another run's checkpoint is replaced only with
        ``overwrite=True``. With ``safetensors`` the model's weights (``model.state_dict()``) also go to
        ``model.safetensors`` (``safetensors.torch.load_file`` reads them anywhere, without dynrep; its metadata
        holds the model's name and config as JSON); :meth:`load` verifies that file's checksum too. For a learner on a split (:class:`~dynrep.envs.splits.SplitEnvironment`) it
        records the base world's config, the split's name, its modifiers and the part, and :meth:`load`
        rebuilds that part."""
        env = {"name": self.env.env_name, "config": self.env.get_config()}
        if isinstance(self.env, SplitEnvironment):  # the base world's config plus which part of which split
            env["split"] = {"name": self.env.name, "part": self.env.part, "modifiers": list(self.env.modifiers)}
        config = {"run_id": self.run_id, "seed": self.seed, "step": self.step, "env": env,
                  "model": {"name": self.model.model_name, "config": config_to_dict(self.model.config)}}
        weights = safetensors_bytes(self.model.state_dict(), {"model": json.dumps(config["model"])}) \
            if safetensors else None
        return save_checkpoint(path, config, self.trainer.state_dict(), overwrite=overwrite, weights=weights)

    @classmethod
    def load(cls, path: str | Path, device: str | torch.device = "auto", *, compile: bool = False,
             autocast: str | None = None) -> "RepresentationLearner":
        """Rebuild a learner from a checkpoint: model, optimiser, step, RNG states and history,
        so that ``train`` continues exactly as an uninterrupted run would (``compile`` and ``autocast`` as in
        the constructor: they are not saved, a checkpoint loads with or without them)."""
        config, state = load_checkpoint(path, map_location="cpu")
        try:
            env = make_env(config["env"]["name"], **config["env"]["config"])
            if "split" in config["env"]:
                train, test = env.split(config["env"]["split"]["name"], config["env"]["split"].get("modifiers", ()))
                env = {"train": train, "test": test}[config["env"]["split"]["part"]]
            learner = cls(env, config["model"]["name"], seed=config["seed"], device=device, compile=compile,
                          autocast=autocast, **config["model"]["config"])
            learner.trainer.load_state_dict(state)
        except (KeyError, TypeError, ValueError, RuntimeError, AttributeError, IndexError) as err:
            if isinstance(err, (CheckpointError, DownloadError)):  # already one clear line (e.g. missing data)
                raise
            raise CheckpointError(f"checkpoint {path} cannot be restored: {type(err).__name__}: {err}") from err
        learner.run_id = config.get("run_id")
        return learner

    def __repr__(self) -> str:
        return (f"RepresentationLearner(env={self.env!r}, model={self.model.model_name!r}, seed={self.seed}, "
                f"device='{self.device}', step={self.step})")


#: Name used by the seed project (tomdbar/dynamical-disentanglement).
DynamicRepresentationLearner = RepresentationLearner

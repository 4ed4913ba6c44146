"""β-TCVAE (Chen et al. 2018, "Isolating Sources of Disentanglement in Variational Autoencoders").

The KL term of the ELBO, averaged over the data, splits into

    E[log q(z|x) − log p(z)] = E[log q(z|x) − log q(z)]            index-code mutual information
                             + E[log q(z) − Σ_d log q(z_d)]          total correlation (TC)
                             + E[Σ_d log q(z_d) − log p(z_d)]        dimension-wise KL

and the loss is ``reconstruction + α·MI + β·TC + γ·dimKL``. The aggregate posterior
``q(z) = (1/N) Σ_n q(z|x_n)`` and its marginals ``q(z_d)`` are estimated from the minibatch,
with ``N`` the dataset size, by minibatch-weighted sampling (MWS, the paper's section 4.1) or
minibatch-stratified sampling (MSS, its appendix); see :func:`aggregate_log_densities`.

Reference code read for the formulas: rtqichen/beta-tcvae ``vae_quant.py`` (``VAE.elbo``,
``_log_importance_weight_matrix``). Deviations from it:

* The decomposition is always computed. The reference returns the plain ELBO when β = 1
  (with α = 1, γ = 1); here β = 1 gives the same objective through the decomposition
  (the three terms telescope to the single-sample KL estimate ``log q(z|x) − log p(z)``).
* The MSS weight matrix gives weight 1/N to each sample's own posterior (the diagonal), as
  the paper's estimator does; the reference's strided assignment puts 1/N in column 0 and
  the stratified weight in column 1 instead (see YannDubs/disentangling-vae issue 58).
  Here the stratified weight ``(N − M)/(N·M)``, ``M = B − 1``, goes to the next sample
  ``(i + 1) mod B``, the rest get ``1/M``; every row sums to 1 and the estimate of
  ``q(z)`` is unbiased (tested by enumerating all batches of a tiny dataset).
* The default batch is 64 frames (the reference trains dSprites with 2048, too slow on CPU);
  larger batches make both estimators less noisy.
* The KL-side terms use the single-sample estimates ``log q(z|x)``, ``log p(z)`` at the
  reparameterised sample, as the reference does; the analytic KL is logged as ``kl``.

Reading the logged terms: MWS is biased when posteriors overlap; with identical posteriors it
reports MI = log N and TC = (D − 1)·log N (≈ 62 nats for D = 10, N = 1024 at initialisation).
With MWS, N only shifts the terms by constants, so it does not change the gradients. Both
estimators assume the batch frames are independent draws from the dataset
(``episode_length=0``, the default); frames of one episode are not.

Defaults: β = 6 (the reference README's command), α = γ = 1 (the paper's β-TCVAE), Adam lr 1e-3
(reference), estimator MWS (the reference's default; MSS behind ``--mss``).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch.autograd.function import once_differentiable

from dynrep.checks import check_int
from dynrep.data.trajectory import Trajectory
from dynrep.envs.splits import SplitEnvironment
from dynrep.models.base import LossOutput
from dynrep.models.registry import register_model
from dynrep.models.vae import VAE, gaussian_kl

ESTIMATORS = ("mws", "mss")
#: Dataset size used for environments with continuous factors (no finite number of states): the size
#: of dSprites (737,280 images), the dataset of Chen et al.'s experiments. With MWS it only shifts the
#: logged MI/TC/dimKL values by constants (gradients do not depend on N); with MSS it sets the weights.
CONTINUOUS_DATASET_SIZE = 737_280
_LOG_2PI = math.log(2.0 * math.pi)


def gaussian_log_density(x: torch.Tensor, mean: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """Elementwise ``log N(x; mean, exp(logvar))`` (broadcasting)."""
    return -0.5 * (_LOG_2PI + logvar + (x - mean).square() * torch.exp(-logvar))


def log_importance_weight_matrix(batch_size: int, dataset_size: int, dtype: torch.dtype = torch.float32,
                                 device: torch.device | str | None = None) -> torch.Tensor:
    """Log MSS weights ``[B, B]`` (Chen et al. 2018, appendix), ``B = batch_size``, ``N = dataset_size``.

    Row ``i`` weighs the posteriors of the batch when estimating ``q(z_i)``: ``1/N`` for the
    sample's own posterior (``j = i``), ``(N − M)/(N·M)`` with ``M = B − 1`` for the stratum
    sample ``j = (i + 1) mod B``, and ``1/M`` for the other ``M − 1``. Needs ``2 <= B <= N``.
    """
    check_int("batch_size", batch_size, 2)
    check_int("dataset_size", dataset_size, batch_size)
    n, m = float(dataset_size), float(batch_size - 1)
    weights = torch.full((batch_size, batch_size), 1.0 / m, dtype=torch.float64)
    rows = torch.arange(batch_size)
    weights[rows, (rows + 1) % batch_size] = (n - m) / (n * m)
    weights[rows, rows] = 1.0 / n
    return weights.log().to(dtype=dtype, device=device)


#: Exponents are clamped to at least this before ``exp``: such terms weigh less than e^-80 of the largest,
#: far below float precision, and torch's CPU ``exp`` is about 6x slower on arguments that underflow.
_EXP_FLOOR = -80.0
#: The ``[rows, B, D]`` blocks of :class:`_PairwiseLogSumExp` hold about this many elements (1 MiB in
#: float32), so that each block's dozen passes run in cache.
_BLOCK_ELEMENTS = 1 << 18


def _logsumexp(x: torch.Tensor, dim: int) -> torch.Tensor:
    """``logsumexp`` over ``dim`` with the exponents clamped at :data:`_EXP_FLOOR` (no autograd)."""
    top = x.amax(dim, keepdim=True)
    return (x - top).clamp_min_(_EXP_FLOOR).exp_().sum(dim).log_() + top.squeeze(dim)


class _PairwiseLogSumExp(torch.autograd.Function):
    """``(joint [B], dims [B, D])`` with ``joint_i = logsumexp_j (W_ij + Σ_d ℓ_ijd)`` and
    ``dims_id = logsumexp_j (W_ij + ℓ_ijd)``, ``ℓ_ijd = log N(z_id; mean_jd, exp(logvar_jd))``.

    ``W`` is a ``[B, B]`` log-weight matrix (constant) or ``None`` for zeros. The ``[B, B, D]``
    densities are never held whole: forward and backward walk over blocks of rows ``i`` (the
    backward recomputes each block) and apply the gradients of the closed forms by hand.
    """

    @staticmethod
    def _blocks(z: torch.Tensor, mean: torch.Tensor, logvar: torch.Tensor, precision: torch.Tensor,
                log_w: torch.Tensor | None):
        """Yield ``(rows, diff [r, B, D], ℓ + W [r, B, D], Σ_d ℓ + W [r, B])`` block by block
        (``precision = exp(-logvar)``)."""
        batch, dims = z.shape
        base = -0.5 * (_LOG_2PI + logvar)
        step = max(1, _BLOCK_ELEMENTS // (batch * dims))
        for start in range(0, batch, step):
            rows = slice(start, start + step)
            diff = z[rows, None, :] - mean
            ell = torch.addcmul(base, diff.square(), precision, value=-0.5)
            joint = ell.sum(-1)
            if log_w is not None:
                joint += log_w[rows]
                ell += log_w[rows, :, None]
            yield rows, diff, ell, joint

    @staticmethod
    def forward(ctx, z, mean, logvar, log_w):
        joint, dims = z.new_empty(z.shape[0]), torch.empty_like(z)
        for rows, _, ell, joint_block in _PairwiseLogSumExp._blocks(z, mean, logvar, torch.exp(-logvar), log_w):
            joint[rows], dims[rows] = _logsumexp(joint_block, 1), _logsumexp(ell, 1)
        ctx.save_for_backward(z, mean, logvar, log_w, joint, dims)
        return joint, dims

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_joint, grad_dims):
        z, mean, logvar, log_w, joint, dims = ctx.saved_tensors
        precision = torch.exp(-logvar)
        grad_z, grad_mean, grad_logvar = torch.empty_like(z), torch.zeros_like(mean), torch.zeros_like(logvar)
        for rows, diff, ell, joint_block in _PairwiseLogSumExp._blocks(z, mean, logvar, precision, log_w):
            # c_ijd = dL/dℓ_ijd: the softmax weights over j of both log-sum-exps times their output gradients.
            weight = (joint_block - joint[rows, None]).clamp_min_(_EXP_FLOOR).exp_().mul_(grad_joint[rows, None])
            c = (ell.sub_(dims[rows, None, :]).clamp_min_(_EXP_FLOOR).exp_().mul_(grad_dims[rows, None, :])
                 .add_(weight[..., None]))
            scaled = diff * precision                                   # (z_i − μ_j) / σ_j²
            grad_logvar += (scaled * diff).sub_(1.0).mul_(c).sum(0)     # dℓ/dlogvar = ((z − μ)²/σ² − 1) / 2
            scaled.mul_(c)
            grad_z[rows] = -scaled.sum(1)                               # dℓ/dz = −(z − μ)/σ²
            grad_mean += scaled.sum(0)                                  # dℓ/dμ = (z − μ)/σ²
        return grad_z, grad_mean, 0.5 * grad_logvar, None


def aggregate_log_densities(z: torch.Tensor, mean: torch.Tensor, logvar: torch.Tensor, dataset_size: int,
                            estimator: str = "mws") -> tuple[torch.Tensor, torch.Tensor]:
    """Minibatch estimates of ``log q(z_i)`` ``[B]`` and of each marginal ``log q(z_i,d)`` ``[B, D]``.

    ``z [B, D]`` holds one sample of each posterior ``N(mean, exp(logvar))`` of the batch.

    * ``"mws"``: ``log q(z_i) ≈ logsumexp_j log q(z_i|x_j) − log(N·B)``, likewise per dimension.
    * ``"mss"``: ``log q(z_i) ≈ logsumexp_j [log W_ij + log q(z_i|x_j)]`` with the weights of
      :func:`log_importance_weight_matrix`, likewise per dimension.

    Differentiable in ``z``, ``mean`` and ``logvar``; memory ``O(B·D)`` beyond a cache-sized block
    (``benchmarks/tc_estimator.py`` compares it with the plain ``[B, B, D]`` autograd form).
    """
    if estimator not in ESTIMATORS:
        raise ValueError(f"estimator must be one of {ESTIMATORS}, got {estimator!r}")
    batch = z.shape[0]
    if estimator == "mws":
        offset = math.log(check_int("dataset_size", dataset_size, 1) * batch)
        log_qz, log_qz_dims = _PairwiseLogSumExp.apply(z, mean, logvar, None)
        return log_qz - offset, log_qz_dims - offset
    log_w = log_importance_weight_matrix(batch, dataset_size, z.dtype, z.device)
    return _PairwiseLogSumExp.apply(z, mean, logvar, log_w)


def kl_decomposition(z: torch.Tensor, mean: torch.Tensor, logvar: torch.Tensor, dataset_size: int,
                     estimator: str = "mws") -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per-sample ``(mutual_info, total_correlation, dimwise_kl)``, each ``[B]``.

    ``MI = log q(z|x) − log q(z)``, ``TC = log q(z) − Σ_d log q(z_d)``,
    ``dimKL = Σ_d log q(z_d) − log p(z)`` with ``p = N(0, I)`` and ``q(z)``, ``q(z_d)`` from
    :func:`aggregate_log_densities`; their sum is ``log q(z|x) − log p(z)`` for every estimator.
    """
    log_qz, log_qz_dims = aggregate_log_densities(z, mean, logvar, dataset_size, estimator)
    log_qz_given_x = gaussian_log_density(z, mean, logvar).sum(-1)
    log_pz = gaussian_log_density(z, torch.zeros_like(z), torch.zeros_like(z)).sum(-1)
    log_prod_qz = log_qz_dims.sum(-1)
    return log_qz_given_x - log_qz, log_qz - log_prod_qz, log_prod_qz - log_pz


def environment_dataset_size(env) -> int:
    """Number of distinct states of ``env``: the allowed combinations of a split, ``factors.num_states``
    for discrete factor worlds, the rows of recorded datasets (``env.num_rows``: toy-nn, the causal
    worlds' published images), :data:`CONTINUOUS_DATASET_SIZE` for other worlds with continuous factors."""
    if isinstance(env, SplitEnvironment):
        return int(env.allowed.sum())
    if env.factors.discrete:
        return env.factors.num_states
    return int(getattr(env, "num_rows", CONTINUOUS_DATASET_SIZE))


@register_model("beta_tcvae")
class BetaTCVAE(VAE):
    """β-TCVAE: ``reconstruction + α·MI + β·TC + γ·dimKL`` (see the module docstring).

    ``dataset_size`` is ``N`` of the estimators; ``None`` derives it from the environment
    (:func:`environment_dataset_size`), the resolved value is :attr:`dataset_size`. With
    α = β = γ = 1 the loss is the negative single-sample ELBO whatever the estimator.
    Logged terms: ``reconstruction``, ``kl`` (analytic, not in the loss), ``mutual_info``,
    ``total_correlation``, ``dimwise_kl`` (batch means).
    """

    ddp_unsupported = ("its minibatch estimators of log q(z) read every pair of the batch and their bias "
                       "depends on the batch size, so ranks' shares do not estimate the global batch's loss")

    @dataclass
    class Config(VAE.Config):
        lr: float = 1e-3
        beta: float = 6.0
        alpha: float = 1.0
        gamma: float = 1.0
        estimator: str = "mws"
        dataset_size: int | None = None

        def __post_init__(self):
            super().__post_init__()
            for name in ("alpha", "gamma"):
                value = getattr(self, name)
                if not value >= 0:
                    raise ValueError(f"{name} must be >= 0, got {value!r}")
            if self.estimator not in ESTIMATORS:
                raise ValueError(f"estimator must be one of {ESTIMATORS}, got {self.estimator!r}")
            if self.dataset_size is not None:
                check_int("dataset_size", self.dataset_size, 1)
            frames = self.batch_size * (self.episode_length + 1)
            if self.estimator == "mss" and frames < 2:
                raise ValueError(f"estimator 'mss' needs at least 2 frames per batch (batch_size * "
                                 f"(episode_length + 1)), got {frames}")

    def __init__(self, env, config: Config):
        super().__init__(env, config)
        self.dataset_size = (environment_dataset_size(env) if config.dataset_size is None
                             else int(config.dataset_size))
        frames = config.batch_size * (config.episode_length + 1)
        if config.estimator == "mss" and self.dataset_size < frames:
            origin = "derived from the environment" if config.dataset_size is None else "given"
            raise ValueError(f"estimator 'mss' needs dataset_size >= frames per batch = {frames}; dataset_size "
                             f"{origin} is {self.dataset_size} (use estimator='mws' or a smaller batch)")

    def loss(self, batch: Trajectory, step: int, generator: torch.Generator | None = None) -> LossOutput:
        target, post, z = self.sample_posterior(batch, generator)
        reconstruction = self.reconstruction_term(self.decode_logits(z), target)
        c = self.config
        mi, tc, dim_kl = (t.mean() for t in kl_decomposition(z, post.mean, post.logvar, self.dataset_size,
                                                              c.estimator))
        total = reconstruction + c.alpha * mi + c.beta * tc + c.gamma * dim_kl
        kl = gaussian_kl(post.mean, post.logvar).mean()
        return LossOutput(total, {"reconstruction": reconstruction, "kl": kl, "mutual_info": mi,
                                  "total_correlation": tc, "dimwise_kl": dim_kl})

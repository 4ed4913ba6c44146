"""Environment level of the metrics: ``compute(name, env, representation_fn, ...)``.

Draws observations from any :class:`~dynrep.envs.base.Environment` (seeded), encodes them in
batches with ``representation_fn`` and calls the array-level metric. Defaults are those of
disentanglement_lib's unsupervised study: 10,000 training and 5,000 test points, seed 0.
"""
from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import torch

from dynrep.checks import check_int
from dynrep.envs.base import Environment
from dynrep.metrics.beta_vae import beta_vae_score
from dynrep.metrics.dci import dci
from dynrep.metrics.downstream import downstream
from dynrep.metrics.factor_vae import factor_vae_score
from dynrep.metrics.independence import true_independence
from dynrep.metrics.irs import irs
from dynrep.metrics.mcc import linear_score, mcc
from dynrep.metrics.mig import mig
from dynrep.metrics.modularity import modularity_explicitness
from dynrep.metrics.sampling import RepresentationFn, Sampler
from dynrep.metrics.sap import sap
from dynrep.metrics.unsupervised import unsupervised

#: Observations ``[B, *obs_shape]`` -> ``(means [B, D], log_variances [B, D])`` of q(z|x).
PosteriorFn = Callable[[torch.Tensor], "tuple[torch.Tensor, torch.Tensor]"]

#: Observations per call of the representation function for the sample-then-score metrics
#: (the reference encodes 16 at a time; in evaluation mode the codes do not depend on it).
ENCODE_BATCH = 256


def _true_independence(sampler: Sampler, *, num_train: int, num_eval: int, batch_size: int, **options) -> dict:
    """The UAE true-independence score on ``num_train`` encoded one-action transitions of the environment."""
    codes, next_codes, actions = sampler.sample_transitions(num_train)
    return true_independence(codes, next_codes, actions, factor_of_action=np.asarray(sampler.env.actions.factor_of),
                             **options)


@dataclass(frozen=True)
class _Metric:
    """How ``compute`` runs one metric: ``sets`` = 1 (codes, factors), 2 (train and test sets) or
    0 (the metric samples for itself through the Sampler); ``options_of`` is the function whose keyword
    arguments the metric takes as options (default: ``function``)."""
    function: Callable[..., dict]
    sets: int
    num_train: int = 10_000
    num_test: int = 5_000
    batch_size: int = ENCODE_BATCH
    discrete: bool = True
    options_of: Callable[..., dict] | None = None


METRICS: dict[str, _Metric] = {
    "mig": _Metric(mig, 1),
    "irs": _Metric(irs, 1, discrete=False),  # bins continuous factors itself (num_bins)
    "unsupervised": _Metric(lambda codes, factors, **kw: unsupervised(codes, **kw), 1, discrete=False,
                            options_of=unsupervised),
    "mcc": _Metric(lambda codes, factors, **kw: mcc(factors, codes, **kw), 1, discrete=False, options_of=mcc),
    "linear_score": _Metric(lambda codes, factors: linear_score(factors, codes), 1, discrete=False),
    "dci": _Metric(dci, 2),
    "sap": _Metric(sap, 2),
    "modularity": _Metric(modularity_explicitness, 2),
    "downstream": _Metric(downstream, 2),
    "factor_vae": _Metric(factor_vae_score, 0, batch_size=64),
    "beta_vae": _Metric(beta_vae_score, 0, batch_size=64),
    "true_independence": _Metric(_true_independence, 0, discrete=False, options_of=true_independence),
}


def default_metrics(env: Environment) -> list[str]:
    """The metrics :meth:`RepresentationLearner.evaluate` computes by default on ``env``: the
    disentanglement_lib suite for worlds whose factors are all discrete; for continuous ones MCC with
    DCI and IRS on causal worlds (``env.graph``: ICM-VAE's evaluation), with the linear (R²) score
    otherwise (the mechanism-sparsity evaluation)."""
    if env.factors.discrete:
        return ["mig", "dci", "sap", "factor_vae", "beta_vae", "modularity"]
    if hasattr(env, "graph"):
        return ["mcc", "dci", "irs"]
    return ["mcc", "linear_score"]


def metric_names(metrics: str | Sequence[str] | None, env: Environment,
                 options: Mapping[str, Mapping[str, Any]] | None = None) -> list[str]:
    """The metric names ``RepresentationLearner.evaluate(metrics, options=options)`` computes: ``None`` ->
    :func:`default_metrics` of ``env``, a string -> that one metric, else the sequence. Raises ValueError on
    an unknown name, on options for a metric not computed, and on options that are not a dict per metric
    or name an option the metric does not take (:func:`metric_options`)."""
    names = default_metrics(env) if metrics is None else [metrics] if isinstance(metrics, str) else list(metrics)
    unknown = sorted({n for n in names if not isinstance(n, str) or n not in METRICS}, key=str)
    if unknown:
        raise ValueError(f"metrics: unknown metric(s) {unknown}; metrics are {list_metrics()}")
    options = {} if options is None else options
    if not isinstance(options, Mapping):
        raise ValueError(f"options must be a dict {{metric name: {{option: value}}}}, got {options!r}")
    unknown = sorted(set(options) - set(names), key=str)
    if unknown:
        raise ValueError(f"options given for metrics that are not computed: {unknown}; metrics are {names}")
    for name, given in options.items():
        if not isinstance(given, Mapping):
            raise ValueError(f"options[{name!r}] must be a dict of option values, got {given!r}")
        _check_options(name, given)
    return names


def flatten_scores(name: str, result: dict) -> dict[str, float]:
    """The numbers of a metric result as ``{"<name>/<key>": float}`` (the entry named like the metric as
    ``name``); matrices and strings are left out."""
    return {(name if key == name else f"{name}/{key}"): float(value) for key, value in result.items()
            if isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool)}


#: Keyword arguments ``compute`` sets itself (sample sizes, the shared seed, Chen's log-variances).
_SET_BY_COMPUTE = frozenset({"seed", "num_train", "num_eval", "batch_size", "log_vars"})


def metric_options(name: str) -> list[str]:
    """The options metric ``name`` takes through ``compute(..., **options)`` (its keyword arguments with
    defaults, less those ``compute`` sets itself), sorted."""
    if name not in METRICS:
        raise ValueError(f"unknown metric {name!r}; metrics are {list_metrics()}")
    spec = METRICS[name]
    parameters = inspect.signature(spec.options_of or spec.function).parameters.values()
    return sorted(p.name for p in parameters if p.kind is p.KEYWORD_ONLY and p.default is not p.empty
                  and p.name not in _SET_BY_COMPUTE)


def _check_options(name: str, options: Mapping[str, Any]) -> None:
    allowed = metric_options(name)
    unknown = sorted(set(options) - set(allowed), key=str)
    if unknown:
        raise ValueError(f"metric {name!r} has no option(s) {unknown}; its options are {allowed or 'none'}")


def list_metrics() -> list[str]:
    """Names :func:`compute` accepts."""
    return sorted(METRICS)


def compute(name: str, env: Environment, representation_fn: RepresentationFn, *, seed: int = 0,
            num_train: int | None = None, num_test: int | None = None, batch_size: int | None = None,
            device: torch.device | str | None = None, posterior_fn: PosteriorFn | None = None,
            **options: Any) -> dict:
    """Score ``representation_fn`` on observations of ``env`` with metric ``name``.

    Args:
        name: one of :func:`list_metrics`.
        representation_fn: observations ``[B, *obs_shape]`` (torch, the environment's dtype) ->
            codes ``[B, D]``, e.g. ``model.representation`` (the encoder mean).
        seed: seeds every draw (same seed, same observations, same score).
        num_train, num_test: sample sizes (defaults 10,000 / 5,000; for ``factor_vae`` the
            training and evaluation votes, for ``beta_vae`` the training and evaluation points,
            for ``true_independence`` the number of one-action transitions).
        batch_size: for ``factor_vae`` / ``beta_vae`` the reference's group size (64); otherwise
            observations per encoder call.
        device: where observations are moved before ``representation_fn`` (default: CPU).
        posterior_fn: observations ``[B, *obs_shape]`` -> ``(means [B, D], log_variances [B, D])`` of the
            encoder's Gaussians q(z|x); read instead of ``representation_fn`` by ``mig`` with
            ``estimator="chen"`` (Chen et al.'s MIG, which estimates the MI from q(z|x)), required there.
        options: passed to the array-level metric (:func:`metric_options` lists them; any other name is a
            ValueError; e.g. ``mode="fast"`` for ``dci``,
            ``method="spearman"`` for ``mcc``); metrics with a ``seed`` (their estimators'
            random state) get ``seed``, and metrics with a ``continuous_factors`` switch (``dci``,
            ``sap``) get True on worlds with continuous factors unless ``options`` sets it.

    Returns:
        the array-level metric's dict.
    """
    _check_options(name, options)
    spec = METRICS[name]
    num_train = check_int("num_train", spec.num_train if num_train is None else num_train, 1)
    num_test = check_int("num_test", spec.num_test if num_test is None else num_test, 1)
    batch_size = check_int("batch_size", spec.batch_size if batch_size is None else batch_size, 1)
    parameters = inspect.signature(spec.function).parameters
    if "seed" in parameters:  # estimators share the sampling seed, as in dlib
        options["seed"] = seed
    if "continuous_factors" in parameters:
        options = {"continuous_factors": not env.factors.discrete, **options}
    if spec.sets == 0:
        sampler = Sampler(env, representation_fn, seed=seed, device=device)
        return spec.function(sampler, num_train=num_train, num_eval=num_test, batch_size=batch_size, **options)
    if name == "mig" and options.get("estimator") == "chen":
        if posterior_fn is None:
            raise ValueError("mig with estimator='chen' reads the encoder's Gaussians q(z|x): pass posterior_fn "
                             "(observations -> (means, log_variances)); representation_fn gives codes only")
        sampler = Sampler(env, lambda obs: torch.cat(posterior_fn(obs), dim=-1), seed=seed, batch_size=batch_size,
                          device=device)
        sampler.require_discrete(name)
        params, factors = sampler.sample(num_train)
        means, log_vars = np.split(params, 2, axis=1)
        return mig(means, factors, log_vars=log_vars, **options)
    sampler = Sampler(env, representation_fn, seed=seed, batch_size=batch_size, device=device)
    if spec.discrete and not options.get("continuous_factors", False):
        sampler.require_discrete(name)
    train = sampler.sample(num_train)
    if spec.sets == 1:
        return spec.function(*train, **options)
    return spec.function(*train, *sampler.sample(num_test), **options)

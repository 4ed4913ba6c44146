"""Toy-nn: the synthetic data of mechanism-sparsity disentanglement (Lachapelle et al., CLeaR 2022).

Ten continuous latents ``z`` follow a sparse Gaussian transition (driven by ten
continuous actions, or by the previous latents) and are observed through a fixed
random 4-layer LeakyReLU network ``f: R^10 -> R^20``. The eight datasets are the
``{action,temporal}_sparsity_{trivial,non_trivial,non_trivial_no_graph_crit,
non_trivial_no_suff_var}`` transition models of the reference generator
(``data/synthetic.py`` of slachapelle/disentanglement_via_mechanism_sparsity,
first commit ce29394). The arrays here are the reference's, bit for bit: the random
numbers are drawn in the reference's order and the latent means and the float32 mixing
network are computed with the same floating-point operations. ``tests/test_toy_nn.py``
pins this with the sha256 of every full array (observations, latents, actions) of the
8 datasets x 3 subsets at ``num_samples=1e5``, as the reference generator itself produces
them. The float32 matrix products could round differently under another BLAS kernel
(CPU instruction set); the pin holds on x86-64 AVX2 with torch's MKL, at 1 and 2 threads.

Random numbers, per subset object (as in the reference, where each split is its own
dataset object):

* ``np.random.default_rng(265542)`` ("process" generator): for the ``*_no_suff_var``
  datasets first the matrix ``A = normal(size=(10, 10)) * G``; then the mixing weights
  ``W1 [10, 20]``, ``W2``, ``W3``, ``W4 [20, 20]``; then, for action datasets, the
  actions ``uniform(-2, 2, size=(N, 10))``. Every subset re-creates this generator, so
  the mixing network and ``A`` are shared by train/valid/test (intended) and the
  valid and test ACTIONS equal the first rows of the train actions (a reference
  quirk kept here: with latent noise 0.01, valid/test rows of action datasets are
  near-duplicates of train rows).
* ``np.random.default_rng(seed)`` with seed 1 (train), 2 (valid), 3 (test): the latent
  noise (and ``z^0`` of temporal datasets), then the observation noise.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import torch

from dynrep.checks import as_generator, check_int
from dynrep.data.trajectory import Trajectory
from dynrep.envs.base import ActionSpace, Environment, FactorSpace
from dynrep.envs.registry import register_env

#: The eight transition models of the reference, action datasets first.
DATASETS = tuple(f"{kind}_sparsity_{variant}" for kind in ("action", "temporal")
                 for variant in ("trivial", "non_trivial", "non_trivial_no_graph_crit", "non_trivial_no_suff_var"))
#: Subset names, their sampling seeds and their share of ``num_samples`` (the reference's train.py split).
SUBSETS = ("train", "valid", "test")
SUBSET_SEEDS = {"train": 1, "valid": 2, "test": 3}
SUBSET_FRACTIONS = {"train": 0.8, "valid": 0.1, "test": 0.1}
#: Seed of the generator that draws the mixing network, ``A`` and the actions (shared by every subset).
PROCESS_SEED = 265542
#: Latent and observation dimensions.
LATENT_DIM = 10
OBSERVATION_DIM = 20
#: Standard deviation of the latent transition noise (variance 1e-4) and of the observation noise.
LATENT_STD = float(np.sqrt(1e-4))
OBSERVATION_NOISE_STD = 0.01
#: Negative slope of the mixing network's LeakyReLUs.
NEGATIVE_SLOPE = 0.2
#: Actions are uniform on [ACTION_LOW, ACTION_HIGH]^10.
ACTION_LOW, ACTION_HIGH = -2.0, 2.0
#: Temporal datasets: ``mu = z + TEMPORAL_RATE * delta(z)``.
TEMPORAL_RATE = 0.5
#: Rows processed at a time by the sine sums and the mixing network (bounds the [rows, 10, 10] temporaries).
CHUNK = 16384
#: Smallest ``num_samples``: every subset (0.1 of it for valid/test) needs 2 rows to be standardised.
MIN_SAMPLES = 20

# Sinusoid helpers of the non-trivial datasets: frequency (i + 3) / pi and phase i for CHILD row i.
_FREQUENCY = np.repeat(np.arange(3, LATENT_DIM + 3)[:, None] / np.pi, LATENT_DIM, axis=1)
_PHASE = np.repeat(np.arange(LATENT_DIM, dtype=np.float64)[:, None], LATENT_DIM, axis=1)


def _cyclic_graph() -> np.ndarray:
    """Identity plus cyclic sub-diagonal: child i has parents {i, (i - 1) mod 10}."""
    graph = np.eye(LATENT_DIM, dtype=np.int64)
    graph[np.arange(LATENT_DIM), (np.arange(LATENT_DIM) - 1) % LATENT_DIM] = 1
    return graph


def _block_graph(block: int) -> np.ndarray:
    """Block-diagonal all-ones ``block x block`` blocks."""
    groups = np.arange(LATENT_DIM) // block
    return (groups[:, None] == groups[None, :]).astype(np.int64)


#: Ground-truth graph of each dataset's driving variables (rows = children z^t_i, columns = parents).
_GRAPHS = {
    "action_sparsity_trivial": np.eye(LATENT_DIM, dtype=np.int64),
    "action_sparsity_non_trivial": _cyclic_graph(),
    "action_sparsity_non_trivial_no_graph_crit": _block_graph(2),
    "action_sparsity_non_trivial_no_suff_var": _cyclic_graph(),
    "temporal_sparsity_trivial": np.eye(LATENT_DIM, dtype=np.int64),
    "temporal_sparsity_non_trivial": np.tril(np.ones((LATENT_DIM, LATENT_DIM), dtype=np.int64)),
    "temporal_sparsity_non_trivial_no_graph_crit": _block_graph(LATENT_DIM // 2),
    "temporal_sparsity_non_trivial_no_suff_var": np.tril(np.ones((LATENT_DIM, LATENT_DIM), dtype=np.int64)),
}


def _rebuild(cls: type, config: dict) -> "ToyNN":
    return cls(**config)


def _draw_process(generator: np.random.Generator, dataset: str
                  ) -> tuple[np.ndarray | None, tuple[np.ndarray, ...]]:
    """``(A or None, (W1, W2, W3, W4))`` drawn from the process generator in the reference order.

    ``A [10, 10]`` float64 (``*_no_suff_var`` only); ``W_k [fan_in, fan_out]`` float32 with
    orthonormal rows scaled by ``sqrt(2 / (1 + 0.2^2)) * sqrt(2 / (fan_in + fan_out))``.
    """
    matrix = None
    if dataset.endswith("no_suff_var"):
        matrix = generator.normal(size=(LATENT_DIM, LATENT_DIM)) * _GRAPHS[dataset].astype(np.float64)
    weights = []
    for fan_in, fan_out in ((LATENT_DIM, OBSERVATION_DIM),) + ((OBSERVATION_DIM, OBSERVATION_DIM),) * 3:
        w = generator.normal(size=(fan_in, fan_out))
        w = np.linalg.qr(w.T)[0].T  # rows orthonormal
        w = w * (np.sqrt(2 / (1 + NEGATIVE_SLOPE ** 2)) * np.sqrt(2.0 / (fan_in + fan_out)))
        weights.append(w.astype(np.float32))
    return matrix, tuple(weights)


def _as_vectors(name: str, value: Any, dim: int) -> np.ndarray:
    """``value`` as float64 ``[n, dim]``; ValueError naming ``name`` otherwise."""
    array = np.asarray(value)
    if array.ndim != 2 or array.shape[1] != dim:
        raise ValueError(f"{name} must have shape [n, {dim}], got {array.shape}")
    if array.size and not (np.issubdtype(array.dtype, np.floating) or np.issubdtype(array.dtype, np.integer)):
        raise ValueError(f"{name} must be real numbers, got dtype {array.dtype}")
    return array.astype(np.float64, copy=False)


@register_env("toy_nn")
class ToyNN(Environment):
    """One subset (train, valid or test) of one of the eight toy-nn datasets.

    Latents ``z in R^10`` (factors ``z0..z9``, continuous) have Gaussian transitions with
    standard deviation 0.01 around a mean ``mu``; the graph convention is
    ``G[i, j] = 1`` iff parent ``j`` drives child ``z_i`` (rows are children):

    * action datasets (``n_lag = 0``), ``a ~ U(-2, 2)^10``, ``z ~ N(mu(a), 1e-4 I)``:
      ``trivial`` ``mu_i = sin(a_i)``, ``G^a = I``;
      ``non_trivial`` ``mu_i = sum_j G^a_ij sin(a_j (i + 3) / pi + i)`` with
      ``G^a_ij = 1`` iff ``j in {i, (i - 1) mod 10}`` (20 edges);
      ``non_trivial_no_graph_crit`` the same sinusoids with five 2x2 all-ones blocks;
      ``non_trivial_no_suff_var`` ``mu = A a``, ``A = N(0, 1)^{10x10} * G^a`` (cyclic graph).
    * temporal datasets (``n_lag = 1``, no actions), ``z^0 ~ N(0, I)``,
      ``z^1 ~ N(z^0 + 0.5 delta(z^0), 1e-4 I)``: ``trivial`` ``delta = sin(z)``, ``G^z = I``;
      ``non_trivial`` ``delta_i = sum_j G^z_ij sin(z_j (i + 3) / pi + i)``, ``G^z`` lower
      triangular with diagonal (55 edges); ``non_trivial_no_graph_crit`` the same with two
      5x5 all-ones blocks; ``non_trivial_no_suff_var`` ``delta = A z``, ``A = N(0, 1) * tril``.

    Observations ``x = standardise(f(z)) + 0.01 * N(0, I_20)`` where ``f`` is the mixing
    network (:meth:`mixing`) and the standardisation uses this subset's own per-coordinate
    mean and std (ddof 0; skipped with ``normalize=False``), as in the reference.

    The reference arrays are generated on first access and kept: :attr:`latents`
    ``[N, T, 10]``, :attr:`observations` ``[N, T, 20]`` (``T = 1`` for action datasets,
    2 for temporal ones) and :attr:`action_values` ``[N, 10]`` (``[N, 0]`` for temporal
    datasets), all float32. The full 800k-row train subset takes a few seconds.

    Trajectory view (:meth:`trajectories`, :meth:`sample_trajectories`, obs ``[B, 2, 20]``,
    actions ``[B, 1, A]`` float32, factors ``[B, 2, 10]``): for temporal datasets an
    episode is a reference row, its two frames and an empty action ``[B, 1, 0]``. Action
    datasets have one frame per row (``z^t`` depends only on ``a^{t-1}``); since their rows
    are i.i.d., row ``i - 1`` followed by action ``a_i`` and frame ``x_i`` is a valid
    transition of this world, so episode ``i`` is ``obs [x_{i-1}, x_i]``, ``actions [a_i]``,
    ``factors [z_{i-1}, z_i]``, with ``i - 1`` taken cyclically (row 0 pairs with row
    ``N - 1``). Frame 1 and the action are exactly reference row ``i``; frame 0 is context
    only. ``length = 0`` gives the static last frames of rows.

    Args:
        dataset: one of :data:`DATASETS`.
        subset: ``"train"`` (seed 1), ``"valid"`` (seed 2) or ``"test"`` (seed 3).
        num_samples: total over the three subsets (>= 20); the subset has
            ``int(num_samples * fraction)`` rows with fractions 0.8 / 0.1 / 0.1
            (800k / 100k / 100k by default, as in the reference's train.py).
        normalize: standardise the observations per coordinate before adding the noise
            (the reference's default; ``False`` is its ``--no_norm``).
    """

    def __init__(self, dataset: str, *, subset: str = "train", num_samples: int = 1_000_000,
                 normalize: bool = True):
        if not isinstance(dataset, str) or dataset not in DATASETS:
            raise ValueError(f"dataset must be one of {list(DATASETS)}, got {dataset!r}")
        if not isinstance(subset, str) or subset not in SUBSETS:
            raise ValueError(f"subset must be one of {list(SUBSETS)}, got {subset!r}")
        if isinstance(num_samples, (float, np.floating)) and float(num_samples).is_integer():
            num_samples = int(num_samples)  # the reference's default is the float 1e6
        if isinstance(num_samples, bool) or not isinstance(num_samples, (int, np.integer)) \
                or num_samples < MIN_SAMPLES:
            raise ValueError(f"num_samples must be an integer >= {MIN_SAMPLES} (the valid and test subsets get "
                             f"0.1 of it and need at least 2 rows each), got {num_samples!r}")
        if not isinstance(normalize, (bool, np.bool_)):
            raise ValueError(f"normalize must be True or False, got {normalize!r}")
        self.dataset = dataset
        self.subset = subset
        self.num_samples = int(num_samples)
        self.normalize = bool(normalize)
        #: "action" or "temporal".
        self.kind = dataset.split("_", 1)[0]
        #: Rows of this subset.
        self.num_rows = int(self.num_samples * SUBSET_FRACTIONS[subset])

        names = tuple(f"z{i}" for i in range(LATENT_DIM))
        self.factors = FactorSpace(names=names, sizes=(None,) * LATENT_DIM, periodic=(False,) * LATENT_DIM)
        if self.kind == "action":
            self.actions = ActionSpace(names=tuple(f"a{i}" for i in range(LATENT_DIM)), dim=LATENT_DIM)
        else:
            self.actions = ActionSpace(dim=0)
        self.observation_shape = (OBSERVATION_DIM,)
        self.observation_dtype = np.dtype(np.float32)
        self._process: tuple[np.ndarray | None, tuple[np.ndarray, ...]] | None = None
        self._data: dict[str, np.ndarray] | None = None

    def get_config(self) -> dict[str, Any]:
        return {"dataset": self.dataset, "subset": self.subset, "num_samples": self.num_samples,
                "normalize": self.normalize}

    def __reduce__(self):
        # Pickle as "regenerate from the config" (DataLoader workers, DDP): never the cached arrays.
        return _rebuild, (type(self), self.get_config())

    # -- the data-generating process -------------------------------------------------------
    @property
    def n_lag(self) -> int:
        """Markov order of the latent transition: 0 for action datasets, 1 for temporal ones."""
        return 0 if self.kind == "action" else 1

    @property
    def action_dim(self) -> int:
        """10 for action datasets, 0 for temporal ones."""
        return int(self.actions.dim)

    @property
    def graph_z(self) -> np.ndarray:
        """Temporal graph ``[10, 10]`` int64 (rows children ``z^t_i``, columns parents ``z^{t-1}_j``);
        all zeros for action datasets."""
        if self.kind == "action":
            return np.zeros((LATENT_DIM, LATENT_DIM), dtype=np.int64)
        return _GRAPHS[self.dataset].copy()

    @property
    def graph_a(self) -> np.ndarray:
        """Action graph ``[10, 10]`` int64 (rows children ``z^t_i``, columns actions ``a^{t-1}_j``);
        ``[10, 0]`` for temporal datasets."""
        if self.kind == "temporal":
            return np.zeros((LATENT_DIM, 0), dtype=np.int64)
        return _GRAPHS[self.dataset].copy()

    def _get_process(self) -> tuple[np.ndarray | None, tuple[np.ndarray, ...]]:
        if self._process is None:
            self._process = _draw_process(np.random.default_rng(PROCESS_SEED), self.dataset)
        return self._process

    @property
    def mixing_weights(self) -> tuple[np.ndarray, ...]:
        """``(W1 [10, 20], W2, W3, W4 [20, 20])`` float32 of ``x_raw = lrelu(lrelu(lrelu(z W1) W2) W3) W4``."""
        return tuple(w.copy() for w in self._get_process()[1])

    @property
    def transition_matrix(self) -> np.ndarray | None:
        """``A [10, 10]`` float64 of the ``*_no_suff_var`` datasets (``None`` for the others)."""
        matrix = self._get_process()[0]
        return None if matrix is None else matrix.copy()

    def mixing(self, z: np.ndarray) -> np.ndarray:
        """The mixing network ``f``: latents ``[n, 10]`` -> raw observations ``[n, 20]`` float32.

        Computed in float32 with torch, no standardisation and no noise (as the reference's decoder).
        """
        z = _as_vectors("z", z, LATENT_DIM)
        weights = [torch.from_numpy(w) for w in self._get_process()[1]]
        out = np.empty((len(z), OBSERVATION_DIM), dtype=np.float32)
        with torch.no_grad():
            for start in range(0, len(z), CHUNK):
                h = torch.from_numpy(z[start:start + CHUNK].astype(np.float32))
                for w in weights[:-1]:
                    h = torch.matmul(h, w)
                    h = torch.maximum(NEGATIVE_SLOPE * h, h)  # LeakyReLU, written as the reference does
                out[start:start + CHUNK] = torch.matmul(h, weights[-1]).numpy()
        return out

    def _sine_sum(self, inputs: np.ndarray) -> np.ndarray:
        """``[n, 10]`` float64 ``sum_j G_ij sin(inputs_j (i + 3) / pi + i)`` over chunks of rows.

        The reference evaluates all 100 sines and multiplies by the 0/1 graph; here only
        the edges' sines are evaluated (same float64 operations) and written into a zero
        ``[rows, 10, 10]`` tensor that is summed over its last axis exactly like the
        reference's, so the summation order, and hence every bit, is the same.
        """
        child, parent = np.nonzero(_GRAPHS[self.dataset])
        flat = child * LATENT_DIM + parent
        frequency, phase = _FREQUENCY[child, parent], _PHASE[child, parent]
        out = np.empty_like(inputs)
        for start in range(0, len(inputs), CHUNK):
            block = inputs[start:start + CHUNK]
            values = block[:, parent] * frequency  # [rows, edges]
            values += phase
            np.sin(values, out=values)
            terms = np.zeros((len(block), LATENT_DIM * LATENT_DIM))
            terms[:, flat] = values
            out[start:start + CHUNK] = terms.reshape(-1, LATENT_DIM, LATENT_DIM).sum(axis=2)
        return out

    def _mean(self, inputs: np.ndarray) -> np.ndarray:
        """Transition mean ``[n, 10]`` float64 from actions (action datasets) or ``z^{t-1}`` (temporal)."""
        variant = self.dataset.split("_sparsity_", 1)[1]
        if variant == "trivial":
            delta = np.sin(inputs)
        elif variant == "non_trivial_no_suff_var":
            delta = np.matmul(inputs, self._get_process()[0].T)
        else:
            delta = self._sine_sum(inputs)
        return delta if self.kind == "action" else inputs + TEMPORAL_RATE * delta

    def transition_mean(self, z_prev: np.ndarray | None, a: np.ndarray | None = None) -> np.ndarray:
        """Noise-free mean ``mu [n, 10]`` float64 of ``z^t`` given ``z^{t-1} [n, 10]`` and ``a^{t-1}``.

        Action datasets use ``a [n, 10]`` and ignore ``z_prev`` (which may be None); temporal
        datasets use ``z_prev`` and take ``a`` as None or ``[n, 0]``.
        """
        z_prev = None if z_prev is None else _as_vectors("z_prev", z_prev, LATENT_DIM)
        if self.kind == "action":
            if a is None:
                raise ValueError(f"{self.dataset} is driven by actions: a must have shape [n, {LATENT_DIM}], "
                                 "got None")
            a = _as_vectors("a", a, LATENT_DIM)
            if z_prev is not None and len(z_prev) != len(a):
                raise ValueError(f"z_prev and a must have the same number of rows, got {len(z_prev)} and {len(a)}")
            return self._mean(a)
        if z_prev is None:
            raise ValueError(f"{self.dataset} is driven by the previous latents: z_prev must have shape "
                             f"[n, {LATENT_DIM}], got None")
        if a is not None and _as_vectors("a", a, 0).shape[0] != len(z_prev):
            raise ValueError(f"a must be None or have shape [{len(z_prev)}, 0] (temporal datasets have no "
                             f"actions), got {np.shape(a)}")
        return self._mean(z_prev)

    # -- the reference arrays -------------------------------------------------------------------
    def _get_data(self) -> dict[str, np.ndarray]:
        if self._data is None:
            self._data = self._generate()
        return self._data

    def _generate(self) -> dict[str, np.ndarray]:
        """Draw this subset exactly as the reference does (see the module docstring for the order)."""
        n = self.num_rows
        process_rng = np.random.default_rng(PROCESS_SEED)
        self._process = _draw_process(process_rng, self.dataset)
        rng = np.random.default_rng(SUBSET_SEEDS[self.subset])
        if self.kind == "action":
            actions = process_rng.uniform(ACTION_LOW, ACTION_HIGH, size=(n, LATENT_DIM))
            z = self._mean(actions)
            z += LATENT_STD * rng.standard_normal((n, LATENT_DIM))  # = rng.normal(mu, 0.01), same stream
            latents = z[:, None]
        else:
            actions = np.zeros((n, 0))
            z0 = rng.standard_normal((n, LATENT_DIM))
            z1 = self._mean(z0)
            z1 += LATENT_STD * rng.standard_normal((n, LATENT_DIM))
            latents = np.stack([z0, z1], axis=1)
            del z0, z1
        frames = latents.reshape(-1, LATENT_DIM)  # sample-major: (row 0, t 0), (row 0, t 1), ...
        x = self.mixing(frames)
        if self.normalize:
            mean, std = x.mean(0), x.std(0)  # float32, this subset's statistics, as the reference
            x -= mean
            x /= std
        else:
            mean = np.zeros(OBSERVATION_DIM, dtype=np.float32)
            std = np.ones(OBSERVATION_DIM, dtype=np.float32)
        for start in range(0, len(x), CHUNK):  # noise added in float64, then rounded to float32
            rows = min(CHUNK, len(x) - start)
            x[start:start + rows] = x[start:start + rows] + OBSERVATION_NOISE_STD * rng.standard_normal(
                (rows, OBSERVATION_DIM))
        data = {
            "latents": latents.astype(np.float32),
            "observations": x.reshape(n, -1, OBSERVATION_DIM),
            "action_values": actions.astype(np.float32),
            "mean": mean.astype(np.float32),
            "std": std.astype(np.float32),
        }
        for array in data.values():
            array.flags.writeable = False
        return data

    @property
    def latents(self) -> np.ndarray:
        """Reference latents ``[N, T, 10]`` float32 (read-only; generated on first access)."""
        return self._get_data()["latents"]

    @property
    def observations(self) -> np.ndarray:
        """Reference observations ``[N, T, 20]`` float32 (read-only; generated on first access)."""
        return self._get_data()["observations"]

    @property
    def action_values(self) -> np.ndarray:
        """Reference actions ``[N, 10]`` float32 (``[N, 0]`` for temporal datasets; read-only)."""
        return self._get_data()["action_values"]

    @property
    def observation_stats(self) -> tuple[np.ndarray, np.ndarray]:
        """``(mean [20], std [20])`` float32 used to standardise this subset (zeros and ones if not normalised)."""
        data = self._get_data()
        return data["mean"], data["std"]

    # -- Environment interface ---------------------------------------------------------------
    def render(self, factors: np.ndarray) -> np.ndarray:
        """Noise-free observations ``[n, 20]`` float32 of latents ``[n, 10]``: the mixing network
        standardised with this subset's statistics (when ``normalize``)."""
        x = self.mixing(_as_vectors("factors", factors, LATENT_DIM))
        if self.normalize:
            mean, std = self.observation_stats
            x -= mean
            x /= std
        return x

    def step(self, factors: np.ndarray, actions: np.ndarray | None = None,
             magnitudes: np.ndarray | None = None) -> np.ndarray:
        """Noise-free next latents ``[n, 10]`` float32 (the transition mean).

        ``factors [n, 10]``; ``actions [n, 10]`` float for action datasets, ``None`` or
        ``[n, 0]`` for temporal ones. ``magnitudes`` must be None or all 1 (continuous actions).
        """
        factors = _as_vectors("factors", factors, LATENT_DIM)
        if magnitudes is not None and np.any(np.asarray(magnitudes) != 1):
            raise ValueError("magnitudes must be None or all 1: toy-nn actions are continuous vectors, "
                             "not repeatable shifts")
        if self.kind == "action" and actions is not None:
            actions = _as_vectors("actions", actions, LATENT_DIM)
            if len(actions) != len(factors):
                raise ValueError(f"actions must have shape [{len(factors)}, {LATENT_DIM}] (one per factor row), "
                                 f"got {actions.shape}")
        if self.kind == "action" and actions is None:
            raise ValueError(f"{self.dataset} is driven by actions: actions must have shape "
                             f"[{len(factors)}, {LATENT_DIM}], got None")
        if self.kind == "temporal" and actions is not None:
            shape = np.shape(actions)
            if shape != (len(factors), 0):
                raise ValueError(f"actions must be None or have shape [{len(factors)}, 0] (temporal datasets "
                                 f"have no actions), got {shape}")
            actions = None
        return self.transition_mean(factors, actions).astype(np.float32)

    def sample_factors(self, n: int, rng: np.random.Generator | int | None = None) -> np.ndarray:
        """Latents ``[n, 10]`` float32 of the last frame of ``n`` uniformly random rows (with replacement)."""
        n = check_int("n", n, 0)
        rows = as_generator(rng).integers(0, self.num_rows, size=n)
        return self.latents[rows, -1]

    def _rows(self, index: Any) -> np.ndarray:
        if index is None:
            return np.arange(self.num_rows)
        rows = np.asarray(index)
        if rows.ndim != 1 or (rows.size and not np.issubdtype(rows.dtype, np.integer)):
            raise ValueError(f"index must be a 1-D array of row numbers in [0, {self.num_rows}), "
                             f"got shape {rows.shape} and dtype {rows.dtype}")
        rows = rows.astype(np.int64, copy=False)
        if rows.size and (rows.min() < 0 or rows.max() >= self.num_rows):
            raise ValueError(f"index must hold row numbers in [0, {self.num_rows}), got values in "
                             f"[{rows.min()}, {rows.max()}]")
        return rows

    def trajectories(self, index: np.ndarray | None = None) -> Trajectory:
        """Episodes of rows ``index`` (default: every row, in order) as a :class:`Trajectory`.

        ``obs [B, 2, 20]``, ``actions [B, 1, A]`` float32 (``A`` = 10, or 0 for temporal
        datasets), ``factors [B, 2, 10]`` float32. For action datasets frame 0 is the
        cyclically previous row (see the class docstring).
        """
        rows = self._rows(index)
        data = self._get_data()
        if self.kind == "temporal":
            obs, factors = data["observations"][rows], data["latents"][rows]
        else:
            previous = (rows - 1) % self.num_rows
            obs = np.stack([data["observations"][previous, 0], data["observations"][rows, 0]], axis=1)
            factors = np.stack([data["latents"][previous, 0], data["latents"][rows, 0]], axis=1)
        actions = data["action_values"][rows][:, None, :]
        return Trajectory(obs=torch.from_numpy(obs), actions=torch.from_numpy(actions),
                          factors=torch.from_numpy(factors))

    def sample_trajectories(self, batch: int, length: int, rng: np.random.Generator | int | None = None,
                            max_magnitude: int = 1) -> Trajectory:
        """Episodes of ``batch`` uniformly random rows of this subset (with replacement).

        ``length = 1``: the published windows, as :meth:`trajectories`. ``length = 0``:
        static frames, ``obs [B, 1, 20]`` (the last frame of each row), ``actions [B, 0, A]``,
        ``factors [B, 1, 10]``.
        """
        batch = check_int("batch", batch, 1)
        length = check_int("length", length, 0)
        if length > 1:
            raise ValueError(f"length must be 0 (static frames) or 1 (one transition): toy-nn data are the "
                             f"reference's fixed windows of at most two frames, got {length}")
        if max_magnitude != 1:
            raise ValueError(f"max_magnitude must be 1: toy-nn actions are continuous vectors, not repeatable "
                             f"shifts, got {max_magnitude!r}")
        rows = as_generator(rng).integers(0, self.num_rows, size=batch)
        if length == 1:
            return self.trajectories(rows)
        data = self._get_data()
        return Trajectory(obs=torch.from_numpy(data["observations"][rows, -1:]),
                          actions=torch.zeros((batch, 0, self.action_dim), dtype=torch.float32),
                          factors=torch.from_numpy(data["latents"][rows, -1:]))

    def observation_to_image(self, obs: np.ndarray) -> np.ndarray:
        raise ValueError(f"{type(self).__name__} observations are {OBSERVATION_DIM}-dimensional vectors, not "
                         "images; plot the vectors (or the latents) instead")

"""Environment contract: factor and action spaces, batched stepping and rendering.

Every data source in dynrep is an :class:`Environment`. A world holds a batch of
ground-truth factor vectors; actions shift them; ``render`` turns factors into
observations. Everything is batched over the leading axis and seeded through an
explicit :class:`numpy.random.Generator`.
"""
from __future__ import annotations

import abc
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import numpy as np
import torch

from dynrep.checks import as_generator, check_int
from dynrep.data.trajectory import Trajectory

#: Procedural worlds whose every rendered state fits in this many bytes are drawn once and cached.
CACHE_BYTES = 64 * 2**20


@dataclass(frozen=True)
class FactorSpace:
    """Names, sizes and periodicity of the ground-truth factors.

    ``sizes[k]`` is the number of values of factor ``k`` (values are ``0..size-1``),
    or ``None`` for a continuous factor. ``periodic[k]`` says whether a shift wraps
    around (cyclic group C_n) or is clamped at the ends. ``periods[k]`` (None: the size)
    is the order n of a periodic factor's cyclic group when the classes from n on repeat
    the first ones (class ``c >= n`` shows class ``c - n``'s value): dSprites' 40
    orientations span [0, 2pi] with both ends, so their period is 39.
    """

    names: tuple[str, ...]
    sizes: tuple[int | None, ...]
    periodic: tuple[bool, ...]
    periods: tuple[int | None, ...] | None = None

    def __post_init__(self):
        if not (len(self.names) == len(self.sizes) == len(self.periodic)):
            raise ValueError("FactorSpace: names, sizes and periodic must have the same length, got "
                             f"{len(self.names)}, {len(self.sizes)}, {len(self.periodic)}")
        if len(set(self.names)) != len(self.names):
            raise ValueError(f"FactorSpace: factor names must be unique, got {self.names}")
        for name, size in zip(self.names, self.sizes):
            if size is not None and size < 1:
                raise ValueError(f"FactorSpace: factor {name!r} must have size >= 1 or None, got {size}")
        if self.periods is not None:
            if len(self.periods) != len(self.names):
                raise ValueError(f"FactorSpace: periods must have one entry per factor ({len(self.names)}), "
                                 f"got {len(self.periods)}")
            for name, size, cyclic, period in zip(self.names, self.sizes, self.periodic, self.periods):
                if period is not None and not (cyclic and size is not None and 1 <= period <= size):
                    raise ValueError(f"FactorSpace: periods of factor {name!r} must be None or, for a periodic "
                                     f"discrete factor, in [1, size={size}]; got {period} (periodic={cyclic})")

    def __len__(self) -> int:
        return len(self.names)

    @property
    def cycles(self) -> tuple[int | None, ...]:
        """Per factor, the modulus of a periodic shift: its period, else its size."""
        periods = self.periods or (None,) * len(self)
        return tuple(size if period is None else period for size, period in zip(self.sizes, periods))

    @property
    def discrete(self) -> bool:
        """True when every factor has a finite number of values."""
        return all(size is not None for size in self.sizes)

    def index(self, name: str) -> int:
        """Position of the factor called ``name``."""
        if name not in self.names:
            raise KeyError(f"unknown factor {name!r}; factors are {list(self.names)}")
        return self.names.index(name)

    @property
    def num_states(self) -> int:
        """Number of distinct factor vectors (discrete spaces only)."""
        if not self.discrete:
            raise ValueError("FactorSpace.num_states needs discrete factors")
        return int(np.prod(self.sizes, dtype=np.int64))

    def to_index(self, factors: np.ndarray) -> np.ndarray:
        """Mixed-radix (C order, last factor fastest) index ``[N]`` of factor vectors ``[N, K]``."""
        return np.ravel_multi_index(tuple(np.asarray(factors, dtype=np.int64).T), self.sizes)

    def from_index(self, index: np.ndarray) -> np.ndarray:
        """Factor vectors ``[N, K]`` int64 of mixed-radix indices ``[N]`` (inverse of :meth:`to_index`)."""
        return np.stack(np.unravel_index(np.asarray(index, dtype=np.int64), self.sizes), axis=-1)

    def validate(self, factors: np.ndarray) -> np.ndarray:
        """``factors`` as int64 ``[N, K]``; ValueError naming the first bad column and value otherwise."""
        factors = np.asarray(factors)
        if factors.ndim != 2 or factors.shape[1] != len(self):
            raise ValueError(f"factors must have shape [N, {len(self)}], got {factors.shape}")
        if factors.size and not np.issubdtype(factors.dtype, np.integer):
            raise ValueError(f"factors must be integers, got dtype {factors.dtype}")
        factors = factors.astype(np.int64, copy=False)
        bad = np.argwhere((factors < 0) | (factors >= np.asarray(self.sizes, dtype=np.int64)))
        if len(bad):
            row, k = bad[0]
            raise ValueError(f"factors out of range: {self.names[k]} must be in [0, {self.sizes[k]}), "
                             f"got {factors[row, k]}")
        return factors

    def sample(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """Uniform factor vectors ``[n, K]`` int64 (discrete spaces only)."""
        if not self.discrete:
            raise ValueError("FactorSpace.sample needs discrete factors; continuous worlds sample their own")
        return rng.integers(0, np.asarray(self.sizes, dtype=np.int64), size=(n, len(self)), dtype=np.int64)


@dataclass(frozen=True)
class ActionSpace:
    """Discrete actions (``n`` named actions) or continuous actions (``dim`` floats).

    For factor-shift worlds, discrete action ``2k`` moves actionable factor ``k`` by
    +1 and ``2k + 1`` by -1; ``factor_of[a]`` is the factor index that action ``a``
    moves and ``sign[a]`` its direction.
    """

    names: tuple[str, ...] = ()
    dim: int | None = None
    factor_of: tuple[int, ...] = ()
    sign: tuple[int, ...] = ()

    @property
    def discrete(self) -> bool:
        return self.dim is None

    @property
    def n(self) -> int:
        """Number of discrete actions."""
        return len(self.names)

    @classmethod
    def factor_shifts(cls, factors: FactorSpace, actionable: Sequence[int] | None = None) -> "ActionSpace":
        """Two actions (``name+`` / ``name-``) per actionable factor.

        By default every factor with more than one value is actionable.
        """
        if actionable is None:
            actionable = [k for k, size in enumerate(factors.sizes) if size is not None and size > 1]
        names, factor_of, sign = [], [], []
        for k in actionable:
            for s, suffix in ((1, "+"), (-1, "-")):
                names.append(f"{factors.names[k]}{suffix}")
                factor_of.append(int(k))
                sign.append(s)
        return cls(names=tuple(names), factor_of=tuple(factor_of), sign=tuple(sign))

    def validate(self, actions: np.ndarray, num_rows: int) -> np.ndarray:
        """Discrete ``actions`` as int64 ``[num_rows]``; ValueError on a wrong shape or an unknown action."""
        actions = np.asarray(actions, dtype=np.int64)
        if actions.shape != (num_rows,):
            raise ValueError(f"actions must have shape ({num_rows},), got {actions.shape}")
        if actions.size and (actions.min() < 0 or actions.max() >= self.n):
            raise ValueError(f"actions must be in [0, {self.n}) ({list(self.names)}), got values in "
                             f"[{actions.min()}, {actions.max()}]")
        return actions

    def sample(self, shape: tuple[int, ...], rng: np.random.Generator) -> np.ndarray:
        """Uniform random discrete actions of the given shape, int64."""
        if not self.discrete:
            raise ValueError("ActionSpace.sample: continuous action spaces are sampled by their environment")
        if self.n == 0:
            if np.prod(shape) > 0:
                raise ValueError("this environment has no actions (every factor has a single value)")
            return np.zeros(shape, dtype=np.int64)
        return rng.integers(0, self.n, size=shape, dtype=np.int64)


class Environment(abc.ABC):
    """A world of ground-truth factors that actions change and ``render`` observes.

    Subclasses set ``factors``, ``actions``, ``observation_shape`` and
    ``observation_dtype`` and implement :meth:`render` and :meth:`get_config`.
    The default :meth:`step` shifts discrete factors by ±magnitude, cyclically for
    periodic factors (modulo their period) and clamped otherwise.
    """

    #: Registry name, set by :func:`dynrep.envs.registry.register_env`.
    env_name: str = ""
    #: Every state's frame ``[num_states, *frame]`` once :meth:`_render_cached` has built it.
    _table: np.ndarray | None = None
    factors: FactorSpace
    actions: ActionSpace
    observation_shape: tuple[int, ...]
    observation_dtype: np.dtype

    @abc.abstractmethod
    def render(self, factors: np.ndarray) -> np.ndarray:
        """Observations ``[N, *observation_shape]`` for factor vectors ``[N, K]``."""

    @abc.abstractmethod
    def get_config(self) -> dict[str, Any]:
        """Constructor keyword arguments that rebuild this environment (JSON-serialisable)."""

    @property
    def is_image(self) -> bool:
        """True for ``[C, H, W]`` observations."""
        return len(self.observation_shape) == 3

    def sample_factors(self, n: int, rng: np.random.Generator | int | None = None) -> np.ndarray:
        """Uniformly random factor vectors ``[n, K]``."""
        return self.factors.sample(check_int("n", n, 0), as_generator(rng))

    def step(self, factors: np.ndarray, actions: np.ndarray, magnitudes: np.ndarray | None = None) -> np.ndarray:
        """Apply one action per row: ``factors [N, K]``, ``actions [N]`` -> new factors ``[N, K]``.

        ``magnitudes [N]`` (default 1) multiplies the shift.
        """
        factors = self.factors.validate(factors)
        actions = self.actions.validate(actions, len(factors))
        moved = np.asarray(self.actions.factor_of, dtype=np.int64)[actions]
        shift = np.asarray(self.actions.sign, dtype=np.int64)[actions]
        if magnitudes is not None:
            shift = shift * np.asarray(magnitudes, dtype=np.int64)
        sizes = np.asarray(self.factors.sizes, dtype=np.int64)[moved]
        cycles = np.asarray(self.factors.cycles, dtype=np.int64)[moved]
        periodic = np.asarray(self.factors.periodic)[moved]
        rows = np.arange(len(factors))
        new_value = factors[rows, moved] + shift
        # modulo the period, so a shift never lands on a class that repeats an earlier one
        new_value = np.where(periodic, np.mod(new_value, cycles), np.clip(new_value, 0, sizes - 1))
        out = factors.copy()
        out[rows, moved] = new_value
        return out

    def sample_trajectories(self, batch: int, length: int, rng: np.random.Generator | int | None = None,
                            max_magnitude: int = 1) -> Trajectory:
        """Random-action episodes from uniformly random start states.

        Returns a :class:`Trajectory` with ``obs [batch, length+1, *obs_shape]``,
        ``actions [batch, length]`` int64, ``factors [batch, length+1, K]`` (int64 class indices, or float
        values in worlds with continuous factors) and, when
        ``max_magnitude > 1``, ``magnitudes [batch, length]`` drawn from ``1..max_magnitude``.
        """
        batch = check_int("batch", batch, 1)
        length = check_int("length", length, 0)
        max_magnitude = check_int("max_magnitude", max_magnitude, 1)
        rng = as_generator(rng)
        start = self.sample_factors(batch, rng)
        factors = np.empty((batch, length + 1, len(self.factors)), dtype=start.dtype)
        factors[:, 0] = start
        actions = self.actions.sample((batch, length), rng)
        magnitudes = rng.integers(1, max_magnitude + 1, size=(batch, length)) if max_magnitude > 1 else None
        for t in range(length):  # a loop over time only; each step is batched
            factors[:, t + 1] = self.step(factors[:, t], actions[:, t],
                                          None if magnitudes is None else magnitudes[:, t])
        obs = self.render(factors.reshape(-1, factors.shape[-1]))
        return Trajectory(
            obs=torch.from_numpy(obs.reshape(batch, length + 1, *self.observation_shape)),
            actions=torch.from_numpy(actions),
            factors=torch.from_numpy(factors),
            magnitudes=None if magnitudes is None else torch.from_numpy(magnitudes),
        )

    def _render_cached(self, factors: np.ndarray, draw: Callable[[np.ndarray], np.ndarray],
                       frame_bytes: int) -> np.ndarray:
        """Frames of validated ``factors [N, K]``: a gather from a table of every state's frame
        (drawn by ``draw`` on first use) when that table fits in :data:`CACHE_BYTES`
        (``frame_bytes`` per state), else ``draw(factors)``."""
        if self._table is None and self.factors.num_states * frame_bytes <= CACHE_BYTES:
            self._table = draw(self.factors.from_index(np.arange(self.factors.num_states)))
        if self._table is not None:
            return self._table[self.factors.to_index(factors)]
        return draw(factors)

    def split(self, name: str, modifiers: Sequence[str] = ()) -> tuple["Environment", "Environment"]:
        """``(train_env, test_env)`` for a combinatorial-generalisation split and the dataset's ``modifiers``,
        see :mod:`dynrep.envs.splits`."""
        from dynrep.envs.splits import split  # splits builds on this module
        return split(self, name, modifiers)

    def observation_to_image(self, obs: np.ndarray) -> np.ndarray:
        """Displayable frames ``[N, H, W, C]`` uint8 from observations ``[N, *obs_shape]``.

        Float observations are read as intensities in [0, 1] (what decoders output).
        """
        if not self.is_image:
            raise ValueError(f"{type(self).__name__} has non-image observations {self.observation_shape}; "
                             "it must override observation_to_image")
        obs = np.asarray(obs)
        if obs.dtype != np.uint8:
            obs = np.round(np.clip(obs, 0.0, 1.0) * 255).astype(np.uint8)
        images = obs.transpose(0, 2, 3, 1)
        return np.repeat(images, 3, axis=-1) if images.shape[-1] == 1 else images

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"{type(self).__name__}({args})"

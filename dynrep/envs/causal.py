"""Procedural causal worlds: continuous causal variables, a known graph, mechanisms and interventions.

A :class:`CausalEnvironment` (Pendulum, Flow) has factors that are the causal variables
themselves, in label order, as float64 values in the units of the published labels. Root
variables are set freely; every other variable is computed by its mechanism from its
parents and, where the generator has one, an exogenous noise term. Images are drawn from
all variables, so an intervention on any variable (``do(shadow_length = 8)``) shows up in
the picture even when it breaks the mechanism.

Conventions shared by every dynrep causal world:

* ``graph[i, j] = 1`` iff variable ``j`` is a parent of variable ``i`` (rows = children).
* ``sample_factors`` draws rows of the published image grid of the chosen ``subset``
  (the exact label tuples of the published files, with exact rather than truncated
  values); ``trajectories()`` is that finite dataset.
* Actions shift one root variable by one label unit (``name+`` / ``name-``), clamped to
  the published range, then re-apply every mechanism with each row's own exogenous noise
  (abducted from the current values): a counterfactual step. An earlier intervention on a
  noise-free variable therefore lasts until the next step.
"""
from __future__ import annotations

import abc
from typing import Any, Mapping

import numpy as np
import torch

from dynrep.checks import as_generator, check_int
from dynrep.data.trajectory import Trajectory
from dynrep.envs.base import ActionSpace, Environment, FactorSpace

SUBSETS = ("train", "test", "all")
#: Images drawn at a time (bounds the float32 temporaries of the rasteriser).
DRAW_CHUNK = 512


class CausalVariables:
    """Causal variables with a known graph, shared by the causal worlds (mixin of an Environment).

    Class attributes: ``variables`` (names, in label order, = ``factors.names``), ``parents``
    (``{child: (parent, ...)}`` for every non-root variable, listed in a topological order) and
    ``label_scale`` (``[K, 2]`` (centre, scale) the published models standardise labels with).
    """

    variables: tuple[str, ...]
    parents: dict[str, tuple[str, ...]]
    label_scale: np.ndarray

    @property
    def graph(self) -> np.ndarray:
        """``[K, K]`` int64 adjacency: ``graph[i, j] = 1`` iff ``variables[j] -> variables[i]`` (rows = children)."""
        graph = np.zeros((len(self.variables), len(self.variables)), dtype=np.int64)
        for child, parents in self.parents.items():
            graph[self.variables.index(child), [self.variables.index(p) for p in parents]] = 1
        return graph

    def standardize(self, factors: np.ndarray) -> np.ndarray:
        """Labels ``(factors - centre) / scale`` ``[N, K]`` float32 with the published :attr:`label_scale`."""
        values = np.asarray(factors, dtype=np.float64)
        return ((values - self.label_scale[:, 0]) / self.label_scale[:, 1]).astype(np.float32)


class CausalEnvironment(CausalVariables, Environment):
    """Base of the procedural causal benchmarks.

    Subclasses set the class attributes below and of :class:`CausalVariables` and implement
    :meth:`grid`, :meth:`mechanism`, :meth:`abduct` and :meth:`_draw`.

    Attributes:
        root_ranges: ``{root: (low, high)}``, the published range of each root (steps clamp to it).
        bounds: ``{variable: (low, high)}``, the values the renderer accepts (interventions too).
        image_size: side of the square RGB observations in pixels.
    """

    root_ranges: dict[str, tuple[float, float]]
    bounds: dict[str, tuple[float, float]]

    def __init__(self, *, subset: str = "train", image_size: int = 96):
        if subset not in SUBSETS:
            raise ValueError(f"subset must be one of {SUBSETS}, got {subset!r}")
        self.subset = subset
        self.image_size = check_int("image_size", image_size, 16)
        k = len(self.variables)
        self.factors = FactorSpace(self.variables, (None,) * k, (False,) * k)
        roots = [self.variables.index(name) for name in self.root_ranges]
        self.actions = ActionSpace.factor_shifts(self.factors, actionable=roots)
        self.observation_shape = (3, self.image_size, self.image_size)
        self.observation_dtype = np.dtype(np.uint8)
        values, test = self.grid()
        keep = {"train": ~test, "test": test, "all": np.ones_like(test)}[subset]
        self._rows = values[keep]

    # ---------------------------------------------------------------- what subclasses define

    @abc.abstractmethod
    def grid(self) -> tuple[np.ndarray, np.ndarray]:
        """The published dataset: label values ``[M, K]`` float64 in generation order, and its test mask ``[M]``."""

    @abc.abstractmethod
    def mechanism(self, child: str, values: np.ndarray, noise: np.ndarray) -> np.ndarray:
        """Value ``[N]`` of ``child`` from the current ``values [N, K]`` and exogenous ``noise [N, E]``."""

    @abc.abstractmethod
    def abduct(self, values: np.ndarray) -> np.ndarray:
        """The exogenous noise ``[N, E]`` that reproduces ``values [N, K]`` under the mechanisms."""

    @abc.abstractmethod
    def _draw(self, values: np.ndarray) -> np.ndarray:
        """Images ``[N, 3, S, S]`` uint8 of validated ``values [N, K]``."""

    # ---------------------------------------------------------------- the causal interface

    def get_config(self) -> dict[str, Any]:
        return {"subset": self.subset, "image_size": self.image_size}

    def check_values(self, values: np.ndarray, name: str = "factors") -> np.ndarray:
        """``values`` as float64 ``[N, K]``; ValueError naming the first variable outside :attr:`bounds`."""
        values = np.asarray(values)
        if values.ndim != 2 or values.shape[1] != len(self.variables):
            raise ValueError(f"{name} must have shape [N, {len(self.variables)}] (columns {list(self.variables)}), "
                             f"got {values.shape}")
        values = values.astype(np.float64)
        for k, variable in enumerate(self.variables):
            low, high = self.bounds[variable]
            bad = ~((values[:, k] >= low) & (values[:, k] <= high))  # also catches NaN
            if bad.any():
                raise ValueError(f"{name}: {variable} must be in [{low}, {high}], got {values[bad, k][0]}")
        return values

    def descendants(self, variable: str) -> list[str]:
        """Non-root variables downstream of ``variable``, in topological order."""
        found = {variable}
        for child, parents in self.parents.items():  # parents is in topological order
            if found.intersection(parents):
                found.add(child)
        return [child for child in self.parents if child in found and child != variable]

    def intervene(self, interventions: Mapping[str, float | np.ndarray], factors: np.ndarray | None = None, *,
                  n: int = 16, rng: np.random.Generator | int | None = None) -> np.ndarray:
        """Apply ``do(variable = value)`` for each entry of ``interventions`` to every row of ``factors``.

        Intervened variables take their values (scalars, or arrays ``[N]``); their descendants that are
        not intervened on are recomputed by the mechanisms, using each row's own exogenous noise
        (abducted from ``factors``: a counterfactual); every other variable keeps its value.

        Args:
            interventions: ``{variable name: value}``, values in the units of the labels.
            factors: ``[N, K]`` rows to intervene on; default ``n`` rows drawn with ``rng`` by
                :meth:`sample_factors`.

        Returns:
            the new factors ``[N, K]`` float64; render them with :meth:`render`.
        """
        if not interventions:
            raise ValueError("interventions must name at least one variable, e.g. "
                             f"{{{self.variables[0]!r}: value}}; variables are {list(self.variables)}")
        unknown = [name for name in interventions if name not in self.variables]
        if unknown:
            raise ValueError(f"interventions: unknown variable {unknown[0]!r}; variables are {list(self.variables)}")
        values = self.check_values(self.sample_factors(n, rng) if factors is None else factors)
        noise = self.abduct(values)
        new = values.copy()
        for name, value in interventions.items():
            column = np.broadcast_to(np.asarray(value, dtype=np.float64), (len(new),)) if np.ndim(value) == 0 \
                else np.asarray(value, dtype=np.float64)
            if column.shape != (len(new),):
                raise ValueError(f"interventions: {name} must be a scalar or have shape [{len(new)}], "
                                 f"got {column.shape}")
            new[:, self.variables.index(name)] = column
        downstream = {child for name in interventions for child in self.descendants(name)} - set(interventions)
        for child in self.parents:  # topological order
            if child in downstream:
                new[:, self.variables.index(child)] = self.mechanism(child, new, noise)
        return self.check_values(new, "intervened factors")

    # ---------------------------------------------------------------- the Environment contract

    @property
    def num_rows(self) -> int:
        """Number of published images in this subset."""
        return len(self._rows)

    def grid_factors(self) -> np.ndarray:
        """Every published label tuple of this subset ``[M, K]`` float64, in generation order."""
        return self._rows.copy()

    def sample_factors(self, n: int, rng: np.random.Generator | int | None = None) -> np.ndarray:
        """``n`` uniformly random rows of the published grid of this subset, ``[n, K]`` float64."""
        n = check_int("n", n, 0)
        return self._rows[as_generator(rng).integers(0, self.num_rows, size=n)]

    def step(self, factors: np.ndarray, actions: np.ndarray, magnitudes: np.ndarray | None = None) -> np.ndarray:
        """Shift one root per row by ``±magnitude`` label units (clamped to :attr:`root_ranges`) and
        re-apply every mechanism with the row's abducted exogenous noise. ``[N, K]``, ``[N]`` -> ``[N, K]``."""
        values = self.check_values(factors)
        actions = self.actions.validate(actions, len(values))
        noise = self.abduct(values)
        shift = np.asarray(self.actions.sign, dtype=np.float64)[actions]
        if magnitudes is not None:
            shift = shift * np.asarray(magnitudes, dtype=np.float64)
        moved = np.asarray(self.actions.factor_of, dtype=np.int64)[actions]
        ranges = np.array([self.root_ranges.get(name, (0.0, 0.0)) for name in self.variables])[moved]
        rows = np.arange(len(values))
        new = values.copy()
        new[rows, moved] = np.clip(values[rows, moved] + shift, ranges[:, 0], ranges[:, 1])
        for child in self.parents:  # topological order: every non-root follows its (possibly moved) parents
            new[:, self.variables.index(child)] = self.mechanism(child, new, noise)
        return new

    def render(self, factors: np.ndarray) -> np.ndarray:
        """Images ``[N, 3, S, S]`` uint8 of the variables ``factors [N, K]`` (any values within :attr:`bounds`)."""
        values = self.check_values(factors)
        out = np.empty((len(values), *self.observation_shape), dtype=np.uint8)
        for start in range(0, len(values), DRAW_CHUNK):
            out[start:start + DRAW_CHUNK] = self._draw(values[start:start + DRAW_CHUNK])
        return out

    def trajectories(self, index: np.ndarray | None = None) -> Trajectory:
        """The published images of this subset (rows ``index``, default all) as a static
        :class:`Trajectory`: ``obs [M, 1, 3, S, S]`` uint8, ``actions [M, 0]``, ``factors [M, 1, K]`` float64."""
        rows = self._rows if index is None else self._rows[np.asarray(index, dtype=np.int64)]
        return Trajectory(obs=torch.from_numpy(self.render(rows)[:, None]),
                          actions=torch.zeros((len(rows), 0), dtype=torch.int64),
                          factors=torch.from_numpy(rows[:, None]))

"""Combinatorial-generalisation holdouts of the Lost-in-Latent-Space study (Montero et al.).

A split is named ``"<dataset>/<condition>/<variant>"`` (conditions: ``interp``,
``recomb2element``, ``recomb2range``, ``extrp``) and defined by a predicate on the
factor **class indices** of the full grid (specs/latent.md 1.2; value thresholds are
translated to classes so that float labels such as 0.7999... cannot move a boundary).
``split(env, name)`` returns ``(train_env, test_env)``: views of the environment
that sample only their allowed factor combinations.
"""
from __future__ import annotations

from typing import Any, Callable

import numpy as np

from dynrep.checks import as_generator
from dynrep.envs.base import Environment

Classes = dict[str, np.ndarray]
#: name -> (held-out predicate, training predicate or None for "the complement").
Rule = tuple[Callable[[Classes], np.ndarray], Callable[[Classes], np.ndarray] | None]


def _circle_pos(c: Classes, name: str) -> np.ndarray:
    """Position value in [0, 1] of a Circles/Simple class (positions are linspace(0, 1, grid))."""
    return c[name] / (c["_grid"] - 1)


# dSprites classes: scale 0.5 + 0.1c; orientation c * 2pi/39; positions c/31 (so > 0.5 <=> c >= 16).
# Shapes3D classes: hues c/10; scale linspace(0.75, 1.25, 8) (>= 1.1 <=> c >= 6); shape 3 = pill;
# orientation linspace(-30, 30, 15) (>= 0 <=> c >= 7, > 20 <=> c >= 13). MPI3D values are the classes.
SPLITS: dict[str, Rule] = {
    "dsprites/recomb2element/leave1out": (lambda c: (c["shape"] == 1) & (c["scale"] >= 2) & (c["orientation"] >= 14)
                                          & (c["orientation"] <= 25) & (c["pos_x"] >= 21) & (c["pos_y"] >= 21), None),
    "dsprites/recomb2range/sqr2tx": (lambda c: (c["shape"] == 0) & (c["pos_x"] >= 16), None),
    "dsprites/recomb2range/ell2tx": (lambda c: (c["shape"] == 1) & (c["pos_x"] >= 16), None),
    "dsprites/recomb2range/sqr2scl": (lambda c: (c["shape"] == 0) & (c["scale"] >= 3), None),
    "dsprites/extrp/blank_side": (lambda c: c["pos_x"] >= 16, None),
    "shapes3d/interp/odd_ohue": (lambda c: c["object_hue"] % 2 == 1, None),
    "shapes3d/interp/odd_wnf_hue": (lambda c: ~((c["wall_hue"] % 2 == 0) & (c["floor_hue"] % 2 == 0)), None),
    "shapes3d/recomb2element/leave1out": (lambda c: (c["object_hue"] >= 8) & (c["wall_hue"] >= 8)
                                          & (c["floor_hue"] >= 8) & (c["scale"] >= 6) & (c["shape"] == 1)
                                          & (c["orientation"] >= 13), None),
    "shapes3d/recomb2element/shape2ohue": (lambda c: (c["shape"] == 3) & (c["object_hue"] == 2), None),
    "shapes3d/recomb2range/shape2ohue": (lambda c: (c["shape"] == 3) & (c["object_hue"] >= 5), None),
    "shapes3d/recomb2range/shape2fhue": (lambda c: (c["shape"] == 3) & (c["floor_hue"] >= 5), None),
    "shapes3d/recomb2range/shape2orient": (lambda c: (c["shape"] == 3) & (c["orientation"] >= 7), None),
    "shapes3d/recomb2range/fhue2whue": (lambda c: (c["floor_hue"] >= 8) & (c["wall_hue"] <= 5), None),
    "shapes3d/recomb2range/ohue2whue": (lambda c: (c["object_hue"] >= 8) & (c["wall_hue"] <= 5), None),
    "shapes3d/extrp/missing_fh": (lambda c: c["floor_hue"] >= 5, None),
    "mpi3d/recomb2element/leave1out": (lambda c: (c["object_color"] == 5) & (c["object_shape"] == 2)
                                       & (c["object_size"] == 1) & (c["camera_height"] == 1)
                                       & (c["background_color"] == 1) & (c["horizontal_axis"] > 35)
                                       & (c["vertical_axis"] > 35), None),
    "mpi3d/recomb2range/cyl2hx": (lambda c: (c["object_shape"] == 2) & (c["horizontal_axis"] < 20), None),
    "mpi3d/recomb2range/cyl2vx": (lambda c: (c["object_shape"] == 2) & (c["vertical_axis"] < 20), None),
    "mpi3d/recomb2range/redoc2hx": (lambda c: (c["object_color"] == 2) & (c["horizontal_axis"] < 20), None),
    "mpi3d/recomb2range/bkg2cyl": (lambda c: (c["object_shape"] >= 4) & (c["background_color"] == 2), None),
    # hx == 20 is in neither set, as in the original.
    "mpi3d/extrp/horz_gt20": (lambda c: c["horizontal_axis"] > 20, lambda c: c["horizontal_axis"] < 20),
    "mpi3d/extrp/objc_gt3": (lambda c: c["object_color"] > 3, None),
    "circles/interp/midpos": (lambda c: (_circle_pos(c, "pos_x") >= 0.35) & (_circle_pos(c, "pos_x") <= 0.65)
                              & (_circle_pos(c, "pos_y") >= 0.35) & (_circle_pos(c, "pos_y") <= 0.65), None),
    "circles/recomb2range/shape2px": (lambda c: (_circle_pos(c, "pos_x") > 0.5) & (_circle_pos(c, "pos_y") > 0.5),
                                      None),
}
# Simple: the Circles masks restricted to the second shape.
SPLITS["simple/interp/midpos"] = (lambda c: SPLITS["circles/interp/midpos"][0](c) & (c["shape"] == 1), None)
SPLITS["simple/recomb2range/shape2px"] = (lambda c: SPLITS["circles/recomb2range/shape2px"][0](c)
                                          & (c["shape"] == 1), None)


def list_splits() -> list[str]:
    """Sorted names of the defined splits."""
    return sorted(SPLITS)


def split_masks(name: str, names: tuple[str, ...], sizes: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
    """Boolean ``(train, test)`` masks ``[prod(sizes)]`` over the C-order factor grid for split ``name``.

    Needs only the grid (factor names and sizes), not the images.
    """
    if name not in SPLITS:
        raise KeyError(f"unknown split {name!r}; defined splits: {list_splits()}")
    grid = np.indices(sizes).reshape(len(sizes), -1)
    classes: Classes = dict(zip(names, grid))
    if "pos_x" in classes:
        classes["_grid"] = np.asarray(sizes[names.index("pos_x")])
    try:
        test_rule, train_rule = SPLITS[name]
        test = np.asarray(test_rule(classes), dtype=bool)
        train = ~test if train_rule is None else np.asarray(train_rule(classes), dtype=bool) & ~test
    except KeyError as err:
        raise ValueError(f"split {name!r} needs factor {err.args[0]!r}; this environment has {list(names)}") from err
    return train, test


class SplitEnvironment(Environment):
    """A view of ``base`` restricted to the factor combinations in ``allowed [num_states]``.

    Start states are drawn uniformly from the allowed combinations; an action that
    would enter a held-out combination leaves the state unchanged, so trajectories
    never leave the split.
    """

    def __init__(self, base: Environment, allowed: np.ndarray, name: str, part: str):
        if not allowed.any():
            raise ValueError(f"split {name!r} leaves no {part} combinations in this environment")
        self.base, self.name, self.part = base, name, part
        self.allowed = allowed
        self._states = np.flatnonzero(allowed)
        self.factors, self.actions = base.factors, base.actions
        self.observation_shape, self.observation_dtype = base.observation_shape, base.observation_dtype
        self.env_name = base.env_name

    def get_config(self) -> dict[str, Any]:
        return self.base.get_config()

    def sample_factors(self, n: int, rng=None) -> np.ndarray:
        rng = as_generator(rng)
        return self.factors.from_index(self._states[rng.integers(0, len(self._states), size=n)])

    def step(self, factors: np.ndarray, actions: np.ndarray, magnitudes: np.ndarray | None = None) -> np.ndarray:
        moved = self.base.step(factors, actions, magnitudes)
        ok = self.allowed[self.factors.to_index(moved)]
        return np.where(ok[:, None], moved, factors)

    def render(self, factors: np.ndarray) -> np.ndarray:
        return self.base.render(factors)

    def observation_to_image(self, obs: np.ndarray) -> np.ndarray:
        return self.base.observation_to_image(obs)

    def __repr__(self) -> str:
        return f"SplitEnvironment({self.base!r}, split={self.name!r}, part={self.part!r})"


def split(env: Environment, name: str) -> tuple[SplitEnvironment, SplitEnvironment]:
    """``(train_env, test_env)`` of ``env`` for split ``name`` (e.g. ``"shapes3d/recomb2range/shape2ohue"``).

    The split's dataset prefix must match the environment, which must hold its full
    factor grid (no ``factors=`` subset), since the rules are written on its classes.
    """
    dataset = name.split("/")[0]
    if dataset != env.env_name:
        raise ValueError(f"split {name!r} is for {dataset!r}, not for a {env.env_name!r} environment")
    subset = getattr(env, "subset", None)
    if subset is not None and not all(np.array_equal(k, np.arange(g)) for k, g in zip(subset, env._grid_sizes)):
        raise ValueError(f"split {name!r} needs the full factor grid; build the environment without factors=")
    train, test = split_masks(name, env.factors.names, env.factors.sizes)
    return SplitEnvironment(env, train, name, "train"), SplitEnvironment(env, test, name, "test")

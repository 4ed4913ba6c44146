"""Combinatorial-generalisation holdouts of the Lost-in-Latent-Space study (Montero et al.).

Every split and modifier of the study's ``scripts/configs/datasplits.py`` (classes DSprites, Shapes3D, MPI3D,
Circles, Simple, TwoShapes), under the name it is registered with there: ``"<dataset>/<condition>/<variant>"``
with conditions ``interp``, ``recomb2element``, ``recomb2range``, ``extrp``. A split is the study's pair of
masks over the full factor grid, each a predicate on the combinations' factor **values** ``v[name]`` and
**classes** ``c[name]``, using the one the study uses. Values are the environment's ``factor_values`` (dSprites
``latents_values``, Shapes3D ``labels``, MPI3D classes, Circles/Simple/TwoShapes positions in [0, 1]), so a
threshold such as dSprites ``scale > 0.6`` or Shapes3D ``scale >= 1.1`` is decided on the dataset's own floats.
``list_splits(details=True)`` names each split's study table and function.

Modifiers (``list_modifiers(dataset)``) subsample the grid: they are ANDed into both masks. With no condition
(``split(env, "shapes3d", modifiers=...)``) the modifiers alone are the training mask and the test part is the
whole grid, as the study's loaders do with a missing mask.

The study's quirks are kept: dSprites ``leave1out`` tests ``c[shape] == 1`` (ellipse; other dSprites splits test
``v[shape] == 1``, the square) and compares rotation with constants whose names are swapped (``a120 = 4pi/3``,
``a240 = 2pi/3``; it holds out rotations in (2pi/3, 4pi/3): on linspace(0, 2pi, 40), the values the file's
metadata lists, classes 14..25, as classes 13 and 26 equal the bounds to the last bit); ``sqr2tx_ls`` is on shape
value 2, the ellipse, and holds out its positions outside (0.10, 0.60);
MPI3D ``horz_gt20`` leaves ``hx == 20`` in neither part; MPI3D ``even_vx`` keeps the odd classes; ``four_shapes``
drops shapes 0 and 3. The study's unregistered functions (dSprites ``sparse_posY``, MPI3D
``cylinder_to_background`` and ``background2obj_color``, TwoShapes ``unique_side``) are not offered.
``circles/interp/midpos`` and ``simple/interp/midpos`` are deprecated aliases of the ``recomb2range`` names.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import numpy as np

from dynrep.checks import as_generator
from dynrep.envs.base import Environment

Grid = dict[str, np.ndarray]
#: A study mask: (values, classes) of every combination, by factor name -> bool [num_states].
Mask = Callable[[Grid, Grid], np.ndarray]


@dataclass(frozen=True)
class Rule:
    """One study split: ``test`` is held out, ``train`` is trained on (``None``: the complement of ``test``);
    ``source`` is the study's function."""

    source: str
    test: Mask
    train: Mask | None = None


@dataclass(frozen=True)
class Modifier:
    """One study modifier: the combinations it ``keep``s; ``source`` is the study's function."""

    source: str
    keep: Mask


#: dataset prefix -> the study's class in scripts/configs/datasplits.py.
STUDY_CLASSES = {"dsprites": "DSprites", "shapes3d": "Shapes3D", "mpi3d": "MPI3D", "circles": "Circles",
                 "simple": "Simple", "two_shapes": "TwoShapes"}
#: The study's dSprites angle constants, names as it spells them (swapped: ``A120`` is 240 degrees).
A120, A240 = 4 * np.pi / 3, 2 * np.pi / 3


def _complement_of(train: Mask) -> Mask:
    """The test mask of a study split written as a training mask (test = not train)."""
    return lambda v, c: ~train(v, c)


def _sqr2tx_flnk_train(v: Grid, c: Grid) -> np.ndarray:
    return (v["shape"] != 1) | (v["pos_x"] < 0.25) | (v["pos_x"] > 0.75)


def _sqr2tx_ls_train(v: Grid, c: Grid) -> np.ndarray:
    return (v["shape"] != 2) | ((v["pos_x"] > 0.10) & (v["pos_x"] < 0.60))


def _wnf_even(v: Grid, c: Grid) -> np.ndarray:
    return (c["wall_hue"] % 2 == 0) & (c["floor_hue"] % 2 == 0)


def _centre(v: Grid, c: Grid) -> np.ndarray:
    return (v["pos_x"] >= 0.35) & (v["pos_x"] <= 0.65) & (v["pos_y"] >= 0.35) & (v["pos_y"] <= 0.65)


def _quadrant(v: Grid, c: Grid) -> np.ndarray:
    return (v["pos_x"] > 0.5) & (v["pos_y"] > 0.5)


SPLITS: dict[str, Rule] = {
    # dSprites: v[shape] in {1 square, 2 ellipse, 3 heart}, scale 0.5..1, orientation 0..2pi, positions 0..1.
    "dsprites/recomb2element/leave1out": Rule(
        "_DSprites.leave1out",
        lambda v, c: ((c["shape"] == 1) & (v["scale"] > 0.6) & (v["orientation"] > 0.0) & (v["orientation"] < A120)
                      & (v["orientation"] > A240) & (v["pos_x"] > 0.66) & (v["pos_y"] > 0.66))),
    "dsprites/recomb2range/sqr2tx": Rule("_DSprites.square_to_posX",
                                         lambda v, c: (v["shape"] == 1) & (v["pos_x"] > 0.5),
                                         lambda v, c: (v["shape"] != 1) | (v["pos_x"] < 0.5)),
    "dsprites/recomb2range/ell2tx": Rule("_DSprites.ellipse_to_posX",
                                         lambda v, c: (v["shape"] == 2) & (v["pos_x"] > 0.5),
                                         lambda v, c: (v["shape"] != 2) | (v["pos_x"] < 0.5)),
    "dsprites/recomb2range/sqr2scl": Rule("_DSprites.square_to_scale",
                                          lambda v, c: (v["shape"] == 1) & (v["scale"] > 0.75),
                                          lambda v, c: (v["shape"] != 1) | (v["scale"] < 0.75)),
    "dsprites/recomb2range/sqr2tx_cent": Rule(
        "_DSprites.centered_sqr2tx", lambda v, c: (v["shape"] == 1) & (v["pos_x"] > 0.25) & (v["pos_x"] < 0.75)),
    "dsprites/recomb2range/sqr2tx_flnk": Rule("_DSprites.flanked_sqr2tx", _complement_of(_sqr2tx_flnk_train),
                                              _sqr2tx_flnk_train),
    "dsprites/recomb2range/sqr2tx_rs": Rule(
        "_DSprites.rshift_sqr2tx", lambda v, c: (v["shape"] == 1) & (v["pos_x"] > 0.40) & (v["pos_x"] < 0.90)),
    "dsprites/recomb2range/sqr2tx_ls": Rule("_DSprites.lshift_sqrt2tx", _complement_of(_sqr2tx_ls_train),
                                            _sqr2tx_ls_train),
    "dsprites/extrp/blank_side": Rule("_DSprites.blank_side", lambda v, c: v["pos_x"] > 0.5,
                                      lambda v, c: v["pos_x"] < 0.5),
    # Shapes3D: hues in [0, 1), scale linspace(0.75, 1.25, 8), shape 0..3 (3 = pill), orientation -30..30.
    "shapes3d/interp/odd_ohue": Rule("_Shapes3D.odd_ohue", lambda v, c: c["object_hue"] % 2 == 1,
                                     lambda v, c: c["object_hue"] % 2 == 0),
    "shapes3d/interp/odd_wnf_hue": Rule("_Shapes3D.odd_wnf_hue", _complement_of(_wnf_even), _wnf_even),
    "shapes3d/recomb2element/leave1out": Rule(
        "_Shapes3D.leave1out",
        lambda v, c: ((v["object_hue"] >= 0.8) & (v["wall_hue"] >= 0.8) & (v["floor_hue"] >= 0.8)
                      & (v["scale"] >= 1.1) & (v["shape"] == 1) & (v["orientation"] > 20))),
    "shapes3d/recomb2element/shape2ohue": Rule("_Shapes3D.shape_ohue",
                                               lambda v, c: (c["shape"] == 3) & (c["object_hue"] == 2)),
    "shapes3d/recomb2range/ohue2whue": Rule("_Shapes3D.ohue_to_whue",
                                            lambda v, c: (v["object_hue"] >= 0.75) & (v["wall_hue"] <= 0.5)),
    "shapes3d/recomb2range/fhue2whue": Rule("_Shapes3D.fhue_to_whue",
                                            lambda v, c: (v["floor_hue"] >= 0.75) & (v["wall_hue"] <= 0.5)),
    "shapes3d/recomb2range/shape2ohue": Rule("_Shapes3D.shape_to_objh",
                                             lambda v, c: (v["shape"] == 3) & (v["object_hue"] >= 0.5)),
    "shapes3d/recomb2range/shape2ohueq": Rule("_Shapes3D.shape_to_objh_quarter",
                                              lambda v, c: (v["shape"] == 3) & (v["object_hue"] <= 0.25)),
    "shapes3d/recomb2range/shape2fhue": Rule("_Shapes3D.shape_to_floor",
                                             lambda v, c: (v["shape"] == 3) & (v["floor_hue"] >= 0.5)),
    "shapes3d/recomb2range/shape2orient": Rule("_Shapes3D.shape_to_orientation",
                                               lambda v, c: (c["shape"] == 3) & (v["orientation"] >= 0)),
    "shapes3d/recomb2range/shape2ohue_flnk": Rule(
        "_Shapes3D.flanked_shape2ohue",
        lambda v, c: (v["shape"] == 3) & (v["object_hue"] > 0.25) & (v["object_hue"] < 0.75)),
    "shapes3d/extrp/missing_fh": Rule("_Shapes3D.missing_fh_50", lambda v, c: ~(v["floor_hue"] < 0.5),
                                      lambda v, c: v["floor_hue"] < 0.5),
    # MPI3D: values are the classes.
    "mpi3d/recomb2element/leave1out": Rule(
        "_MPID3D.leave1out",
        lambda v, c: ((v["object_color"] == 5) & (v["object_shape"] == 2) & (v["object_size"] == 1)
                      & (v["camera_height"] == 1) & (v["background_color"] == 1) & (v["horizontal_axis"] > 35)
                      & (v["vertical_axis"] > 35))),
    "mpi3d/recomb2range/cyl2hx": Rule("_MPID3D.cylinder_to_horizontal_axis",
                                      lambda v, c: (v["horizontal_axis"] < 20) & (v["object_shape"] == 2)),
    "mpi3d/recomb2range/cyl2vx": Rule("_MPID3D.cylinder_to_vertial_axis",
                                      lambda v, c: (v["vertical_axis"] < 20) & (v["object_shape"] == 2)),
    "mpi3d/recomb2range/redoc2hx": Rule("_MPID3D.redobject2hz",
                                        lambda v, c: (v["horizontal_axis"] < 20) & (v["object_color"] == 2)),
    "mpi3d/recomb2range/bkg2cyl": Rule("_MPID3D.background_to_cylinder",
                                       lambda v, c: (v["object_shape"] >= 4) & (v["background_color"] == 2)),
    "mpi3d/extrp/horz_gt20": Rule("_MPID3D.exclude_horz_gt20", lambda v, c: v["horizontal_axis"] > 20,
                                  lambda v, c: v["horizontal_axis"] < 20),
    "mpi3d/extrp/objc_gt3": Rule("_MPID3D.exclude_objc_gt3", lambda v, c: v["object_color"] > 3,
                                 lambda v, c: v["object_color"] <= 3),
    # Circles / Simple: positions in [0, 1]; Simple holds out the second shape only.
    "circles/recomb2range/midpos": Rule("_Circles.midpos", _centre),
    "circles/recomb2range/shape2px": Rule("_Circles.shape_to_posx", _quadrant),
    "simple/recomb2range/midpos": Rule("_Simple.midpos", lambda v, c: _centre(v, c) & (c["shape"] == 1)),
    "simple/recomb2range/shape2px": Rule("_Simple.shape_to_posx", lambda v, c: (c["shape"] == 1) & _quadrant(v, c)),
    # TwoShapes: object 1 in one of the two lowest hue classes and object 2 above the third.
    "two_shapes/recomb2range/huecomb": Rule("_TwoShapes.hue_combs",
                                            lambda v, c: (c["o1_hue"] < 2) & (c["o2_hue"] > 2)),
}

MODIFIERS: dict[str, dict[str, Modifier]] = {
    "dsprites": {"sparse_posX": Modifier("_DSprites.sparse_posX",
                                         lambda v, c: np.isin(c["pos_x"], [0, 7, 15, 23, 31]))},
    "shapes3d": {"even_ohues": Modifier("_Shapes3D.exclude_odd_ohues", lambda v, c: c["object_hue"] % 2 == 0),
                 "half_ohues": Modifier("_Shapes3D.exclude_half_ohues", lambda v, c: c["object_hue"] < 5),
                 "even_wnf_hues": Modifier("_Shapes3D.exclude_odd_wnf_hues", _wnf_even)},
    "mpi3d": {"four_shapes": Modifier("_MPID3D.remove_redundant_shapes",
                                      lambda v, c: ~np.isin(v["object_shape"], [0, 3])),
              "fix_hx": Modifier("_MPID3D.fix_hx", lambda v, c: v["horizontal_axis"] == 0),
              "lhalf_hx": Modifier("_MPID3D.lhalf_hx", lambda v, c: v["horizontal_axis"] < 20),
              "even_vx": Modifier("_MPID3D.even_vx", lambda v, c: c["vertical_axis"] % 2 == 1)},
    "two_shapes": {"noverlap": Modifier(
        "_TwoShapes.non_overlapping",
        lambda v, c: (np.abs(v["o1_px"] - v["o2_px"]) > 0.2) & (np.abs(v["o1_py"] - v["o2_py"]) > 0.2))},
}

#: Old dynrep name -> the study's name.
DEPRECATED_NAMES = {"circles/interp/midpos": "circles/recomb2range/midpos",
                    "simple/interp/midpos": "simple/recomb2range/midpos"}


def list_splits(details: bool = False) -> list[str] | dict[str, str]:
    """Sorted names of the defined splits; with ``details``, ``{name: study table and function}``, e.g.
    ``"Shapes3D.recomb2element['leave1out'] (_Shapes3D.leave1out)"``."""
    if not details:
        return sorted(SPLITS)
    table = {}
    for name in sorted(SPLITS):
        dataset, condition, variant = name.split("/")
        table[name] = f"{STUDY_CLASSES[dataset]}.{condition}[{variant!r}] ({SPLITS[name].source})"
    return table


def list_modifiers(dataset: str, details: bool = False) -> list[str] | dict[str, str]:
    """Sorted modifier names of ``dataset`` (e.g. ``"shapes3d"``); with ``details``, ``{name: study table and
    function}``. A dataset the study gives no modifiers has none."""
    if dataset not in STUDY_CLASSES:
        raise ValueError(f"dataset must be one of {sorted(STUDY_CLASSES)}, got {dataset!r}")
    modifiers = MODIFIERS.get(dataset, {})
    if not details:
        return sorted(modifiers)
    return {name: f"{STUDY_CLASSES[dataset]}.modifiers[{name!r}] ({modifiers[name].source})"
            for name in sorted(modifiers)}


def canonical_name(name: str) -> str:
    """``name`` itself, or for a deprecated alias its study name (with a DeprecationWarning)."""
    if name in DEPRECATED_NAMES:
        warnings.warn(f"split {name!r} is deprecated; the study registers it as {DEPRECATED_NAMES[name]!r}",
                      DeprecationWarning, stacklevel=3)
        return DEPRECATED_NAMES[name]
    return name


def split_masks(name: str, names: Sequence[str], values: Sequence[np.ndarray],
                modifiers: Sequence[str] = ()) -> tuple[np.ndarray, np.ndarray]:
    """Boolean ``(train, test)`` masks ``[prod(sizes)]`` over the C-order factor grid.

    Args:
        name: a split (``list_splits()``), or a bare dataset (``"shapes3d"``) for modifiers without a condition:
            then train is the modifiers' mask and test the whole grid.
        names: the factor names, in grid order.
        values: per factor, the values of its classes ``[size_k]`` (an environment's ``factor_values``).
        modifiers: names from ``list_modifiers(dataset)``, ANDed into both masks.
    """
    name = canonical_name(name)
    if name not in SPLITS and name not in STUDY_CLASSES:
        raise KeyError(f"unknown split {name!r}; defined splits: {list_splits()} (or a bare dataset "
                       f"{sorted(STUDY_CLASSES)} with modifiers)")
    if isinstance(modifiers, str) or not all(isinstance(m, str) for m in modifiers):
        raise TypeError(f"modifiers must be a sequence of modifier names, got {modifiers!r}")
    dataset = name.split("/")[0]
    unknown = [m for m in modifiers if m not in MODIFIERS.get(dataset, {})]
    if unknown:
        raise ValueError(f"unknown modifier(s) {unknown} for {dataset!r}; its modifiers: {list_modifiers(dataset)}")
    if name == dataset and not modifiers:
        raise ValueError(f"split {name!r} names no condition, so it needs modifiers (from {list_modifiers(dataset)})")
    values = [np.asarray(v) for v in values]
    if len(names) != len(values) or any(v.ndim != 1 for v in values):
        raise ValueError(f"values must be one 1-D array of class values per factor in names {list(names)} "
                         f"(an environment's factor_values), got shapes {[v.shape for v in values]}")
    grid = np.indices([len(v) for v in values]).reshape(len(values), -1)
    classes: Grid = dict(zip(names, grid))
    factor_values: Grid = {n: v[g] for n, v, g in zip(names, values, grid)}
    try:
        keep = np.ones(grid.shape[1], dtype=bool)
        for modifier in modifiers:
            keep &= np.asarray(MODIFIERS[dataset][modifier].keep(factor_values, classes), dtype=bool)
        if name == dataset:  # the study's modifier-only case: modifiers restrict training, the test set is whole
            return keep, np.ones_like(keep)
        rule = SPLITS[name]
        test = np.asarray(rule.test(factor_values, classes), dtype=bool)
        train = ~test if rule.train is None else np.asarray(rule.train(factor_values, classes), dtype=bool)
    except KeyError as err:
        raise ValueError(f"split {name!r} needs factor {err.args[0]!r}; this environment has {list(names)}") from err
    return train & keep, test & keep


class SplitEnvironment(Environment):
    """A view of ``base`` restricted to the factor combinations in ``allowed [num_states]``.

    Start states are drawn uniformly from the allowed combinations; an action that
    would enter a held-out combination leaves the state unchanged, so trajectories
    never leave the split. ``name``, ``part`` and ``modifiers`` say which split this is.
    """

    def __init__(self, base: Environment, allowed: np.ndarray, name: str, part: str, modifiers: Sequence[str] = ()):
        if not allowed.any():
            raise ValueError(f"split {name!r} leaves no {part} combinations in this environment")
        self.base, self.name, self.part, self.modifiers = base, name, part, tuple(modifiers)
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
        modifiers = f", modifiers={self.modifiers!r}" if self.modifiers else ""
        return f"SplitEnvironment({self.base!r}, split={self.name!r}, part={self.part!r}{modifiers})"


def split(env: Environment, name: str, modifiers: Sequence[str] = ()) -> tuple[SplitEnvironment, SplitEnvironment]:
    """``(train_env, test_env)`` of ``env`` for split ``name`` (e.g. ``"shapes3d/recomb2range/shape2ohue"``),
    with the dataset's ``modifiers`` (e.g. ``("even_ohues",)``) ANDed into both parts; ``name`` = the bare
    dataset (``"shapes3d"``) applies the modifiers alone: train = their combinations, test = the whole grid.

    The split's dataset prefix must match the environment, which must hold its full factor grid (no
    ``factors=`` subset); the masks are evaluated on its ``factor_values``.
    """
    name = canonical_name(name)
    dataset = name.split("/")[0]
    if dataset != env.env_name:
        raise ValueError(f"split {name!r} is for {dataset!r}, not for a {env.env_name!r} environment")
    subset = getattr(env, "subset", None)
    if subset is not None and not all(np.array_equal(k, np.arange(g)) for k, g in zip(subset, env._grid_sizes)):
        raise ValueError(f"split {name!r} needs the full factor grid; build the environment without factors=")
    if getattr(env, "factor_values", None) is None:
        raise ValueError(f"split {name!r} needs the environment's factor_values; {env!r} has none")
    train, test = split_masks(name, env.factors.names, env.factor_values, modifiers)
    return (SplitEnvironment(env, train, name, "train", modifiers),
            SplitEnvironment(env, test, name, "test", modifiers))

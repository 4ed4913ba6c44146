"""Sweeps: one run config trained over a grid of values, one run folder per point, then a summary.

``dynrep sweep RUN.yaml seed=0,1,2 model.config.beta=1,4,16 --out runs/sweep --jobs 2`` expands the grid
(the cartesian product of every ``KEY=V1,V2,...``; an override without a top-level comma applies to every
point), validates every point's config, writes the sweep spec and runs each point as
:func:`dynrep.runs.run` ``(config_with_the_point's_values, point_dir)``::

    OUT/sweep.yaml          the spec, written first: the base config, the swept values, folder -> values
    OUT/seed=0,beta=1/      one run folder per point (run.yaml, checkpoint/, scores.json, ...)
    OUT/logs/NAME.log       with --jobs N > 1 or submitit, each point's output
    OUT/summary.csv         one row per point: status, swept values, step, wall time, final metrics
    OUT/summary.png         each metric against each swept value, seeds as mean ± sd error bars

Rerunning the same command continues the sweep: a finished point is skipped, a killed one resumes from its
checkpoint (:func:`dynrep.runs.resume`), one without a checkpoint starts over. Points run in this process
(``jobs=1``), as ``jobs`` parallel local processes, or as a Slurm job array through ``submitit``
(:func:`submit`).
"""
from dynrep.sweeps.grid import (ALIASES, Sweep, grid_points, load, parse_sweep, point_names, point_state, prepare,
                                split_values)
from dynrep.sweeps.launch import SHARED_SLURM_KEYS, check_launcher, default_threads, run_point, run_sweep, submit
from dynrep.sweeps.summary import STATUSES, summarize, summary_figure, summary_rows

__all__ = ["ALIASES", "SHARED_SLURM_KEYS", "STATUSES", "Sweep", "check_launcher", "default_threads", "grid_points",
           "load", "parse_sweep", "point_names", "point_state", "prepare", "run_point", "run_sweep", "split_values",
           "submit", "summarize", "summary_figure", "summary_rows"]

"""What the examples share: their step count, and the data files of the worlds that need a download."""
from __future__ import annotations

import os
import sys
from typing import Any

#: Environment variable that overrides every example's number of training steps (CI sets it small).
STEPS_ENV = "DYNREP_TUTORIAL_STEPS"


def steps(default: int) -> int:
    """Training steps: ``$DYNREP_TUTORIAL_STEPS`` if set, else ``default`` (the example's full setting)."""
    return int(os.environ.get(STEPS_ENV, default))


def evaluation(num_train: int = 10_000) -> dict[str, int]:
    """Sample sizes for ``learner.evaluate``: ``num_train`` frames for each metric and evaluate's default 64
    episodes; for a smoke run (``$DYNREP_TUTORIAL_STEPS`` below 100) 200 frames and 4 episodes."""
    return {"num_train": num_train} if steps(100) >= 100 else {"num_train": 200, "num_episodes": 4}


def data(name: str) -> dict[str, Any]:
    """Keyword arguments that open dataset ``name`` (a ``dynrep download`` name) for its environment.

    The real file in the data directory: ``{}`` (the loader's default path). Run with ``--synthetic``: writes
    the small copy in the published format of :func:`dynrep.data.synthetic.write_synthetic` to
    ``./data-synthetic`` and returns its ``path`` (and MPI3D's reduced grid ``sizes``). Otherwise prints how
    to fetch the data and exits with status 1.
    """
    from dynrep.data.download import dataset_path
    from dynrep.data.synthetic import MPI3D_SIZES, write_synthetic

    if "--synthetic" in sys.argv[1:]:
        path = write_synthetic(name, "data-synthetic")
        print(f"--synthetic: wrote a small synthetic {name} in the published format to {path} "
              "(rendered pictures on a reduced grid, not the real data)")
        return {"path": path, **({"sizes": MPI3D_SIZES} if name.startswith("mpi3d") else {})}
    try:
        dataset_path(name)
    except FileNotFoundError as err:
        sys.exit(f"{err}\nOr try the example on a small synthetic copy: python {sys.argv[0]} --synthetic")
    return {}

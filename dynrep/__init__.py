"""dynrep: disentangled representations of dynamical environments.

    from dynrep import GridWorld, RepresentationLearner
    learner = RepresentationLearner(GridWorld(size=5), model="rotation", latent_dim=4, seed=0)
    learner.train(steps=3000)
    learner.animate("gridworld.gif")
"""
__version__ = "0.1.0"

from dynrep import metrics  # noqa: E402
from dynrep.envs import (Cars3D, CausalCircuit, Circles, DSprites, Environment, Flatland, Flow,  # noqa: E402
                         GridWorld, MPI3D, Pendulum, Shapes3D, Simple, ToyNN, TwoShapes, list_envs, make_env)
from dynrep.learner import DynamicRepresentationLearner, RepresentationLearner, TestResult  # noqa: E402
from dynrep.models import build_model, list_models  # noqa: E402

__all__ = ["Cars3D", "CausalCircuit", "Circles", "DSprites", "DynamicRepresentationLearner", "Environment",
           "Flatland", "Flow", "GridWorld", "MPI3D", "Pendulum", "RepresentationLearner", "Shapes3D", "Simple",
           "TestResult", "ToyNN", "TwoShapes", "__version__", "build_model", "list_envs", "list_models", "make_env", "metrics"]

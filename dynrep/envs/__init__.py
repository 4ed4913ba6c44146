"""Environments: every data source is an Environment with ground-truth factors."""
from dynrep.envs.base import ActionSpace, Environment, FactorSpace
from dynrep.envs.cars3d import Cars3D
from dynrep.envs.causal import CausalEnvironment
from dynrep.envs.causal_circuit import CausalCircuit
from dynrep.envs.circles import Circles, Simple, TwoShapes
from dynrep.envs.dsprites import DSprites
from dynrep.envs.factor_images import FactorImageEnvironment
from dynrep.envs.flatland import Flatland
from dynrep.envs.flow import Flow
from dynrep.envs.gridworld import GridWorld
from dynrep.envs.mpi3d import MPI3D
from dynrep.envs.pendulum import Pendulum
from dynrep.envs.shapes3d import Shapes3D
from dynrep.envs.toy_nn import ToyNN
from dynrep.envs.registry import list_envs, make_env, register_env

__all__ = ["ActionSpace", "Cars3D", "CausalCircuit", "CausalEnvironment", "Circles", "DSprites", "Environment",
           "FactorImageEnvironment", "FactorSpace", "Flatland", "Flow", "GridWorld", "MPI3D", "Pendulum", "Shapes3D",
           "Simple", "ToyNN", "TwoShapes", "list_envs", "make_env", "register_env"]

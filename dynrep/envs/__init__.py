"""Environments: every data source is an Environment with ground-truth factors."""
from dynrep.envs.base import ActionSpace, Environment, FactorSpace
from dynrep.envs.circles import Circles, Simple
from dynrep.envs.gridworld import GridWorld
from dynrep.envs.registry import list_envs, make_env, register_env

__all__ = ["ActionSpace", "Circles", "Environment", "FactorSpace", "GridWorld", "Simple", "list_envs", "make_env",
           "register_env"]

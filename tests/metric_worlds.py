"""Small environments shared by the metric tests."""
import numpy as np

from dynrep.envs.base import ActionSpace, Environment, FactorSpace


class FactorVectors(Environment):
    """Observations are the factor vectors themselves (float32), so a representation is any function of them."""

    def __init__(self, sizes=(4, 5, 3)):
        self.factors = FactorSpace(tuple(f"f{k}" for k in range(len(sizes))), tuple(sizes), (False,) * len(sizes))
        self.actions = ActionSpace.factor_shifts(self.factors)
        self.observation_shape = (len(sizes),)
        self.observation_dtype = np.dtype(np.float32)

    def render(self, factors):
        return self.factors.validate(factors).astype(np.float32)

    def get_config(self):
        return {}

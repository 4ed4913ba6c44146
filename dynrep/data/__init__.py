"""Batches of trajectories and the data layer around them."""
from dynrep.data.trajectory import Trajectory

__all__ = ["Trajectory"]

"""Disentanglement, identifiability and dynamics metrics."""

"""Disentanglement, identifiability and dynamics metrics.

Array level (numpy in, dict out; no torch, no environment): :func:`mig`, :func:`dci`,
:func:`sap`, :func:`modularity_explicitness`, :func:`unsupervised`, :func:`irs`,
:func:`downstream`, :func:`mcc`, :func:`linear_score`, :func:`shd`,
:func:`true_independence`, :func:`generalisation_report`. Environment level:
:func:`compute` (``compute("dci", env, model.representation)``), which also runs the
FactorVAE and β-VAE scores that need to sample with a fixed factor.
"""
from dynrep.metrics.compute import compute, list_metrics, metric_options
from dynrep.metrics.dci import dci
from dynrep.metrics.downstream import downstream
from dynrep.metrics.generalisation import generalisation_report
from dynrep.metrics.graphs import permute_graph, shd
from dynrep.metrics.independence import true_independence
from dynrep.metrics.irs import irs
from dynrep.metrics.mcc import linear_score, mcc
from dynrep.metrics.mig import mig
from dynrep.metrics.modularity import modularity_explicitness
from dynrep.metrics.sap import sap
from dynrep.metrics.unsupervised import unsupervised

__all__ = ["compute", "dci", "downstream", "generalisation_report", "irs", "linear_score", "list_metrics", "mcc",
           "metric_options", "mig", "modularity_explicitness", "permute_graph", "sap", "shd", "true_independence", "unsupervised"]

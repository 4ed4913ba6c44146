"""Mechanism sparsity on a toy-nn sequence dataset: the sparsity penalty on the action graph G^a
identifies the latents (Lachapelle et al. 2022). The reduced budget of benchmarks/mechanism_sparsity.py
(about 1 minute per 1000 steps on one CPU core); prints MCC, the linear R² and the SHD of the learned
graph on the held-out test subset, and draws true vs learned graphs."""
from _common import evaluation, steps
from dynrep import RepresentationLearner, ToyNN

env = ToyNN("action_sparsity_non_trivial", num_samples=100_000)
learner = RepresentationLearner(env, "mechanism_sparsity", reg_a=16.0, lr=5e-3, batch_size=512, mlp_hidden=(256,) * 3,
                                transition_hidden=64, transition_layers=2, learn_decoder_var=True,
                                decoder_logvar_init=-10.0, seed=0)
learner.train(steps=steps(2000))
print(learner.evaluate(**evaluation()))  # mcc, linear_score/r2, graph_a/shd, graph_a/precision, graph_a/recall, edges_a
learner.plot_graphs("toy_nn_graphs.png")

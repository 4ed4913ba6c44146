"""iVAE (Khemakhem et al. 2020) on a toy-nn dataset: the prior is conditioned on the action that led to each
frame, which identifies the latents; the MCC on the held-out test subset and a plot of the loss terms."""
from _common import evaluation, steps
from dynrep import RepresentationLearner, ToyNN

env = ToyNN("action_sparsity_non_trivial", num_samples=100_000)
# The reduced budget of benchmarks/mechanism_sparsity.py (narrower MLPs, 10x the published learning rate).
learner = RepresentationLearner(env, "ivae", batch_size=512, mlp_hidden=(256,) * 3, prior_hidden=(256,) * 2, lr=1e-3,
                                seed=0)
learner.train(steps=steps(2000))
learner.plot_training("toy_nn_ivae_training.png")
print(learner.evaluate(["mcc"], **evaluation()))

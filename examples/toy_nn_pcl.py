"""PCL, permutation-contrastive learning (Hyvärinen & Morioka 2017), on a temporal toy-nn dataset: an encoder
trained to tell real consecutive pairs from shuffled ones; the MCC on the held-out test subset and a plot of
the loss terms."""
from _common import evaluation, steps
from dynrep import RepresentationLearner, ToyNN

env = ToyNN("temporal_sparsity_non_trivial", num_samples=100_000)
# The reduced budget of benchmarks/mechanism_sparsity.py (narrower MLPs, 10x the published learning rate).
learner = RepresentationLearner(env, "pcl", batch_size=512, mlp_hidden=(256,) * 3, psi_hidden=(64,) * 2, lr=1e-3,
                                seed=0)
learner.train(steps=steps(2000))
learner.plot_training("toy_nn_pcl_training.png")
print(learner.evaluate(["mcc"], **evaluation()))

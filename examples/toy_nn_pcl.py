"""PCL, permutation-contrastive learning (Hyvärinen & Morioka 2017), on a temporal toy-nn dataset: an encoder
trained to tell real consecutive pairs from shuffled ones; the MCC on the held-out test subset and a plot of
the loss terms."""
from _common import evaluation, steps
from dynrep import RepresentationLearner, ToyNN

learner = RepresentationLearner(ToyNN("temporal_sparsity_non_trivial", num_samples=100_000), "pcl", seed=0)
learner.train(steps=steps(2000))
learner.plot_training("toy_nn_pcl_training.png")
print(learner.evaluate(["mcc"], **evaluation()))

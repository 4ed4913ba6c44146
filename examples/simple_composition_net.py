"""Combinatorial generalisation (Lost in Latent Space): CompositionNet on the Simple world's training split
`simple/recomb2range/shape2px` (some shape/position combinations held out), a traversal GIF, and the report
of training vs held-out reconstruction and alignment."""
from _common import evaluation, steps
from dynrep import RepresentationLearner, Simple

train, test = Simple().split("simple/recomb2range/shape2px")
learner = RepresentationLearner(train, "composition_net", seed=0)
learner.train(steps=steps(1000))
learner.animate("simple_composition_net.gif", kind="traversal")
n = evaluation(2000)["num_train"]  # frames drawn from each part
# The held-out part fixes the shape: its alignment R² is measured against the training mean.
print(learner.generalisation_report(test, num_train=n, num_test=n, baseline="train_mean"))

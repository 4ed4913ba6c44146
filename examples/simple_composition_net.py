"""Combinatorial generalisation (Lost in Latent Space): CompositionNet on the Simple world's training split
`simple/recomb2range/shape2px` (some shape/position combinations held out), a traversal GIF, and the report
of training vs held-out reconstruction and alignment."""
from _common import steps
from dynrep import RepresentationLearner, Simple

train, test = Simple().split("simple/recomb2range/shape2px")
learner = RepresentationLearner(train, "composition_net", seed=0)
learner.train(steps=steps(2000))
learner.animate("simple_composition_net.gif", kind="traversal")
# The held-out part fixes the shape: its alignment R² is measured against the training mean.
print(learner.generalisation_report(test, num_train=2000, num_test=2000, baseline="train_mean"))

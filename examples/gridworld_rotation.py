"""The four-line script: a rotation learner on the 5x5 GridWorld (about 2 minutes on 2 CPU cores)."""
from _common import evaluation, steps
from dynrep import GridWorld, RepresentationLearner

learner = RepresentationLearner(GridWorld(size=5), model="rotation", latent_dim=4, seed=0)
learner.train(steps=steps(3000))
learner.animate("gridworld.gif")
print(learner.evaluate(["mig"], **evaluation(2000)))  # + the rotation model's own scores

"""RGrVAE on Flatland (Painter et al. 2020): the actions are not given; a policy picks among learned group
actions (REINFORCE). A rollout GIF (truth beside the open-loop prediction)."""
from _common import evaluation, steps
from dynrep import Flatland, RepresentationLearner

learner = RepresentationLearner(Flatland(), "rgrvae", batch_size=32, seed=0)  # published: 128
learner.train(steps=steps(1000))
learner.animate("flatland_rgrvae.gif")
print(learner.evaluate(metrics=(), **evaluation()))  # reconstruction and k-step prediction errors

"""Train under a wall-clock budget, checkpoint, and continue exactly where training stopped; plots the loss
terms of both runs."""
from _common import evaluation, steps
from dynrep import GridWorld, RepresentationLearner

learner = RepresentationLearner(GridWorld(size=5), model="rotation", seed=0)
# Stops after ~30 s with a checkpoint; overwrite=True replaces the one an earlier run of this script left.
learner.train(steps=steps(3000), time_limit=30, checkpoint_dir="runs/gw", overwrite=True)
learner = RepresentationLearner.load("runs/gw")
learner.train(steps=steps(3000) - learner.step, checkpoint_dir="runs/gw")
learner.plot_training("resume_training.png")  # the loss curve across both runs
print(learner.step, learner.evaluate(metrics=(), **evaluation())["rotation_purity_min"])  # model scores only

"""Train under a wall-clock budget, checkpoint, and continue exactly where training stopped."""
from dynrep import GridWorld, RepresentationLearner

learner = RepresentationLearner(GridWorld(size=5), model="rotation", seed=0)
learner.train(steps=3000, time_limit=30, checkpoint_dir="runs/gw")   # stops after ~30 s with a checkpoint
learner = RepresentationLearner.load("runs/gw")
learner.train(steps=3000 - learner.step, checkpoint_dir="runs/gw")
print(learner.step, learner.evaluate(metrics=())["rotation_purity_min"])  # model scores only

"""The same four lines with a β-VAE on GridWorld frames, plus a latent traversal GIF."""
from _common import evaluation, steps
from dynrep import GridWorld, RepresentationLearner

learner = RepresentationLearner(GridWorld(size=5), model="vae", latent_dim=4, beta=4.0, seed=0)
learner.train(steps=steps(2000))
learner.animate("gridworld_vae_traversal.gif", kind="traversal")
print(learner.evaluate(["mig"], **evaluation(2000)))

"""Commutative Lie group VAE (Zhu et al. 2021) on TwoShapes (two coloured sprites, eight factors): latents
act through a commuting Lie algebra basis; a latent traversal GIF and the MIG."""
from _common import evaluation, steps
from dynrep import RepresentationLearner, TwoShapes

learner = RepresentationLearner(TwoShapes(), "liegroup_vae", seed=0)
learner.train(steps=steps(2000))
learner.animate("two_shapes_liegroup_vae.gif", kind="traversal")
print(learner.evaluate(["mig"], **evaluation(2000)))

"""CascadeVAE (Jeong & Song 2019) on Circles (a disc on a 32x32 position grid): an information cascade
releases one latent at a time; a latent traversal GIF and the MIG."""
from _common import evaluation, steps
from dynrep import Circles, RepresentationLearner

learner = RepresentationLearner(Circles(), "cascade_vae", seed=0)
learner.train(steps=steps(2000))
learner.animate("circles_cascade_vae.gif", kind="traversal")
print(learner.evaluate(["mig"], **evaluation(2000)))

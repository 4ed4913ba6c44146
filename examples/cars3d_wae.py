"""WAE-MMD on Cars3D (needs `dynrep download cars3d`, or `--synthetic` for a small copy in its format):
a latent traversal GIF and the MIG."""
from _common import data, evaluation, steps
from dynrep import Cars3D, RepresentationLearner

learner = RepresentationLearner(Cars3D(**data("cars3d")), "wae", seed=0)
learner.train(steps=steps(2000))
learner.animate("cars3d_wae.gif", kind="traversal")
print(learner.evaluate(["mig"], **evaluation(2000)))

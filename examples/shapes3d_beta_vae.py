"""β-VAE on Shapes3D (needs `dynrep download shapes3d`, or `--synthetic` for a small copy in its format):
a latent traversal GIF and the MIG."""
from _common import data, evaluation, steps
from dynrep import RepresentationLearner, Shapes3D

learner = RepresentationLearner(Shapes3D(**data("shapes3d")), "beta_vae", beta=4.0, seed=0)
learner.train(steps=steps(2000))
learner.animate("shapes3d_beta_vae.gif", kind="traversal")
print(learner.evaluate(["mig"], **evaluation(2000)))

"""FactorVAE on MPI3D-toy (needs `dynrep download mpi3d_toy`, or `--synthetic` for a small copy in its format):
a discriminator estimates the total correlation; a latent traversal GIF and the MIG."""
from _common import data, evaluation, steps
from dynrep import MPI3D, RepresentationLearner

learner = RepresentationLearner(MPI3D("toy", **data("mpi3d_toy")), "factor_vae", seed=0)
learner.train(steps=steps(1000))
learner.animate("mpi3d_factor_vae.gif", kind="traversal")
print(learner.evaluate(["mig"], **evaluation(2000)))

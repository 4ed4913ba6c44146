"""β-TCVAE on dSprites (needs `dynrep download dsprites`, or `--synthetic` for a small copy in its format):
the total-correlation penalty, a latent traversal GIF and the MIG."""
from _common import data, evaluation, steps
from dynrep import DSprites, RepresentationLearner

learner = RepresentationLearner(DSprites(**data("dsprites")), "beta_tcvae", beta=6.0, latent_dim=6, seed=0)
learner.train(steps=steps(2000))
learner.animate("dsprites_beta_tcvae.gif", kind="traversal")
print(learner.evaluate(["mig"], **evaluation(2000)))

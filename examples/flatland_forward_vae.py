"""ForwardVAE on Flatland (Caselles-Dupré et al. 2019): each action rotates its own latent plane; a rollout
GIF (truth beside the open-loop prediction)."""
from _common import evaluation, steps
from dynrep import Flatland, RepresentationLearner

learner = RepresentationLearner(Flatland(), "forward_vae", batch_size=32, seed=0)  # published: 128
learner.train(steps=steps(1000))
learner.animate("flatland_forward_vae.gif")
print(learner.evaluate(metrics=(), **evaluation()))  # reconstruction and k-step prediction errors

"""ICM-VAE on Flow (32x32 renders of the water-flow benchmark): causal flows along ball -> water -> outflow
<- hole; a GIF of an intervention on each variable and the MCC on the held-out test subset."""
from _common import evaluation, steps
from dynrep import Flow, RepresentationLearner

learner = RepresentationLearner(Flow(image_size=32), "icm_vae", warmup_steps=1100, seed=0)
learner.train(steps=steps(1200))
learner.animate("flow_interventions.gif", kind="traversal")  # one row per variable: do(variable = v)
print(learner.evaluate(["mcc"], **evaluation()))

"""ICM-VAE on CausalCircuit (files from Qualcomm installed with `dynrep download causal_circuit --url DIR`, or
`--synthetic` for a small copy in their format): one latent block per causal variable (arm, blue, green,
red) on 32x32 frames and a GIF of an intervention on each; the MCC against the labels."""
from _common import data, evaluation, steps
from dynrep import CausalCircuit, RepresentationLearner

env = CausalCircuit(**data("causal_circuit"), image_size=32)  # ICM-VAE's MLP encoder: small frames
learner = RepresentationLearner(env, "icm_vae", warmup_steps=1000, seed=0)
learner.train(steps=steps(1200))
learner.animate("causal_circuit_interventions.gif", kind="traversal")  # one row per variable: do(variable = v)
print(learner.evaluate(["mcc"], **evaluation()))

"""ICM-VAE on Pendulum: MCC and IRS against the causal labels, and a GIF of an intervention on each variable.

Trains ``model="icm_vae"`` (specs/causal.md section 2.2) on ``Pendulum(subset="train")`` and scores it on
every image of the published test subset (1826 images), next to two references made in the same run:
the same network before training (seed 0's initialisation) and an ICM-VAE trained with the same budget
but WITHOUT the label prior (``beta_max=0``: the label term has weight 0, so nothing ties a block to a
label), which shows what the label supervision does.

Scores (test subset, labels in label units):

* MCC blocks: :func:`dynrep.metrics.mcc` (Pearson, Hungarian matching) of ``model.block_means`` (one code
  per causal variable, the mean of its ``k``-dim block) against the 4 labels; ``diag`` is the mean
  ``|corr(block i, label i)|`` without matching, the alignment the label prior asks for; per-variable
  matched correlations are printed below the table.
* MCC z: the same on the full representation ``z [N, n*k]`` (rectangular matching, 4 of the 16 codes).
* IRS: :func:`dynrep.metrics.irs` of ``z`` against the labels with ``diff_quantile=0.99`` (as ICM-VAE's
  evaluation) and disentanglement_lib's 20-bin histogram discretiser of the labels. The labels are
  continuous: the shadow length and position take almost one value per image, so used as class indices
  every group would hold a single image and every code would score a trivial 1. The reference computes
  IRS on the training set; here it is the test set, like the other scores.
* recon: mean per-pixel binary cross-entropy of ``decode(z)`` on the test images.
* DCI: :func:`dynrep.metrics.dci` with ``continuous_factors=True`` (one default
  ``GradientBoostingRegressor`` per label, ICM-VAE's evaluation) of ``z``, fitted on the training images and
  scored on the test images: disentanglement, completeness and informativeness = test R² (ICM-VAE prints an
  exact-match "accuracy" of the regressors instead, which is meaningless for real-valued labels).
GIFs (``benchmarks/results/icm_vae_pendulum_<variable>.gif``, label-prior model): for each causal variable,
``--images`` test images with that variable set by ``model.intervene`` to ``--frames`` values swept over
its range (roots: the published range; shadow variables: the test labels' range), other variables as
encoded; each row shows the true intervention (``env.render(env.intervene(...))``, the descendants
recomputed by the true mechanisms) on the left and the model's on the right. ``..._traversal.gif`` is
``learner.animate(kind="traversal")``: one image, every variable's standardised label swept over [-2, 2]
(``ICMVAE.traverse``), one tile per variable.

Budget. The default is reduced: 32x32 images, ``--steps`` optimiser steps per trained model at batch 64,
with α and β warmed up over the first 94/101 of them (the reference's 94 of 101 epochs). ``--paper`` uses
the published settings: 96x96 images, 101 epochs of 86 batches of 64 (8686 steps), warm-up over 94 epochs
(8084 steps, the model's default) -- hours per model on 2 CPU cores.

A 32x32 step takes 0.155 s of CPU with one thread (0.2 s wall while another benchmark shared the two
cores; with two threads then 0.95 s wall: the threads fight for the busy cores, so use ``--threads 1`` on a
shared machine). The default 1200 steps per model (14 epochs) therefore take about 8 minutes in all.

    python benchmarks/icm_vae.py --threads 1      # reduced budget, about 8 minutes on 2 cores
    python benchmarks/icm_vae.py --steps 20       # smoke test
    python benchmarks/icm_vae.py --paper          # published settings
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

from dynrep import RepresentationLearner
from dynrep.envs.pendulum import Pendulum
from dynrep.metrics import dci, irs, mcc
from dynrep.metrics.dynamics import mean_bce
from dynrep.viz.gif import write_rollout_gif

RESULTS = Path(__file__).resolve().parent / "results"
#: Published schedule: 101 epochs, warm-up to epoch 94, 5482 training images at batch 64 (86 steps per epoch).
PAPER_EPOCHS, PAPER_WARMUP_EPOCHS, STEPS_PER_EPOCH = 101, 94, 86
CHUNK = 256


@torch.no_grad()
def encode(model, obs: torch.Tensor) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``z [N, n*k]``, block means ``[N, n]`` and reconstructions ``[N, C, H, W]`` in [0, 1] of uint8 ``obs``."""
    z = torch.cat([model.representation(chunk) for chunk in obs.split(CHUNK)])
    blocks = z.view(len(z), len(model.variables), -1).mean(-1)
    reconstructed = torch.cat([model.decode(chunk) for chunk in z.split(CHUNK)])
    return z.numpy(), blocks.numpy(), reconstructed.numpy()


def scores(model, obs: torch.Tensor, labels: np.ndarray, train_obs: torch.Tensor, train_labels: np.ndarray
           ) -> dict:
    """The benchmark's scores of ``model`` on test images ``obs [N, C, H, W]`` with labels ``[N, n]`` (DCI's
    regressors fitted on the training images and labels)."""
    z, blocks, reconstructed = encode(model, obs)
    by_block = mcc(labels, blocks)
    disentangled = dci(encode(model, train_obs)[0], train_labels, z, labels, continuous_factors=True)
    return {"dci_d": disentangled["disentanglement"], "dci_c": disentangled["completeness"],
            "dci_i": disentangled["informativeness_test"], "mcc_blocks": by_block["mcc"], "diag": float(np.diag(by_block["correlation"]).mean()),
            "matched": by_block["matched_correlations"], "permutation": by_block["permutation"],
            "mcc_z": mcc(labels, z)["mcc"], "irs": irs(z, labels, diff_quantile=0.99)["irs"],
            "recon": mean_bce(obs.numpy(), reconstructed)}


def print_row(name: str, steps: int, seconds_per_step: float | None, s: dict) -> None:
    per_step = "-" if seconds_per_step is None else f"{seconds_per_step:.3f}"
    print(f"{name:29s} {steps:6d} {per_step:>7s} {s['mcc_blocks']:10.3f} {s['diag']:6.3f} {s['mcc_z']:7.3f} "
          f"{s['irs']:6.3f} {s['dci_d']:6.3f} {s['dci_c']:6.3f} {s['dci_i']:6.3f} {s['recon']:7.4f}", flush=True)


def sweep_values(env: Pendulum, labels: np.ndarray, num_frames: int) -> dict[str, np.ndarray]:
    """Per variable, ``num_frames`` values over its published range (roots) or the labels' range (others)."""
    ranges = {name: env.root_ranges.get(name, (labels[:, j].min(), labels[:, j].max()))
              for j, name in enumerate(env.variables)}
    return {name: np.linspace(low, high, num_frames) for name, (low, high) in ranges.items()}


@torch.no_grad()
def intervention_gifs(learner: RepresentationLearner, env: Pendulum, obs: torch.Tensor, labels: np.ndarray,
                      num_images: int, num_frames: int, prefix: str) -> list[Path]:
    """One GIF per causal variable: true vs model interventions on ``num_images`` test images (module docstring)."""
    rows = np.random.default_rng(0).choice(len(obs), size=num_images, replace=False)
    images, factors = obs[rows], labels[rows]
    size = env.image_size
    paths = []
    for name, values in sweep_values(env, labels, num_frames).items():
        true = np.stack([env.render(env.intervene({name: v}, factors)) for v in values], axis=1)
        predicted = torch.stack([learner.model.intervene(images, {name: float(v)}) for v in values], dim=1)
        frames = [env.observation_to_image(x.reshape(-1, *x.shape[2:])).reshape(*x.shape[:2], size, size, 3)
                  for x in (true, predicted.numpy())]
        path = write_rollout_gif(RESULTS / f"{prefix}_{name}.gif", *frames, fps=3.0)
        print(f"{path}  do({name} = {values[0]:.1f} .. {values[-1]:.1f}, {num_frames} frames), "
              f"{num_images} test images; left truth, right model", flush=True)
        paths.append(path)
    return paths


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=1200, help="optimiser steps per trained model (reduced budget)")
    parser.add_argument("--image-size", type=int, default=32, help="image side (reduced budget)")
    parser.add_argument("--paper", action="store_true", help="published settings: 96x96, 8686 steps, warm-up 8084")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--images", type=int, default=4, help="test images per intervention GIF")
    parser.add_argument("--frames", type=int, default=12, help="frames per intervention GIF")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    args = parser.parse_args()
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    if args.paper:
        size, steps, warmup = 96, PAPER_EPOCHS * STEPS_PER_EPOCH, PAPER_WARMUP_EPOCHS * STEPS_PER_EPOCH
    else:
        size, steps = args.image_size, args.steps
        warmup = round(steps * PAPER_WARMUP_EPOCHS / PAPER_EPOCHS)
    print("command: python " + " ".join(sys.argv))
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    print(f"budget: Pendulum {size}x{size}, {steps} steps x batch 64 per trained model "
          f"({steps / STEPS_PER_EPOCH:.1f} epochs of the 5482 training images), α/β warm-up over {warmup} steps, "
          f"seed {args.seed}{' (published settings)' if args.paper else ' (reduced; --paper for the published)'}",
          flush=True)

    train_env = Pendulum(subset="train", image_size=size)
    test_env = Pendulum(subset="test", image_size=size)
    test = test_env.trajectories()
    obs, labels = test.obs[:, 0], test.factors[:, 0].numpy()
    print(f"test subset: {len(obs)} images; labels {list(test_env.variables)}")
    train = train_env.trajectories()
    train_obs, train_labels = train.obs[:, 0], train.factors[:, 0].numpy()

    print(f"\n{'model':29s} {'steps':>6s} {'s/step':>7s} {'MCC blocks':>10s} {'diag':>6s} {'MCC z':>7s} "
          f"{'IRS':>6s} {'DCI-D':>6s} {'DCI-C':>6s} {'DCI-I':>6s} {'recon':>7s}")
    runs = [("icm_vae (label prior)", {}), ("icm_vae beta_max=0 (no prior)", {"beta_max": 0.0})]
    results, learners = {}, {}
    for name, overrides in runs:
        learner = RepresentationLearner(train_env, "icm_vae", seed=args.seed, device="cpu",
                                        warmup_steps=warmup, **overrides)
        if not results:  # the untrained reference: this seed's initialisation
            results["untrained"] = scores(learner.model, obs, labels, train_obs, train_labels)
            print_row("untrained", 0, None, results["untrained"])
        start = time.perf_counter()
        learner.train(steps=steps, progress=False)
        seconds = time.perf_counter() - start
        results[name] = scores(learner.model, obs, labels, train_obs, train_labels)
        print_row(name, steps, seconds / steps, results[name])
        learners[name] = learner

    print("\nmatched |corr| of block means per label (Hungarian), and the block matched to each label:")
    for name, s in results.items():
        cells = " ".join(f"{v}={c:.3f}(block {b})" for v, c, b in zip(test_env.variables, s["matched"],
                                                                        s["permutation"]))
        print(f"  {name:29s} {cells}")

    print("\nintervention GIFs (label-prior model):", flush=True)
    learner = learners[runs[0][0]]
    intervention_gifs(learner, test_env, obs, labels, args.images, args.frames, "icm_vae_pendulum")
    print(learner.animate(RESULTS / "icm_vae_pendulum_traversal.gif", "traversal", num_frames=args.frames),
          " model.traverse: one image, each variable's standardised label over [-2, 2]", flush=True)


if __name__ == "__main__":
    main()

"""Regenerate every picture the README and the docs show, into ``docs/gallery/``, from short trainings.

    python scripts/make_gallery.py                    # all pictures (about 15 minutes on 2 CPU cores)
    python scripts/make_gallery.py --only gridworld   # one group; --out DIR writes elsewhere

``DYNREP_TUTORIAL_STEPS=N`` replaces every training's step count by N (the tests use it to run the script
quickly; the committed pictures come from the defaults below). Seeds are fixed: the same torch build on the
same device draws the same pictures.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from dynrep import (Circles, Flatland, GridWorld, Pendulum, RepresentationLearner, Shapes3D,  # noqa: E402
                    ToyNN)
from dynrep.data.download import dataset_path  # noqa: E402
from dynrep.learner import held_out_env  # noqa: E402
from dynrep.metrics.compute import compute  # noqa: E402

GALLERY = Path(__file__).resolve().parents[1] / "docs" / "gallery"


def steps(default: int) -> int:
    return int(os.environ.get("DYNREP_TUTORIAL_STEPS", default))


def gridworld(out: Path) -> list[Path]:
    """The README's headline: the rotation learner's open-loop rollouts and latent traversal on GridWorld."""
    learner = RepresentationLearner(GridWorld(size=5), "rotation", latent_dim=4, seed=0)
    learner.train(steps(1000), progress=False)
    return [learner.animate(out / "gridworld_rollout.gif"),
            learner.animate(out / "gridworld_traversal.gif", kind="traversal")]


def flatland(out: Path) -> list[Path]:
    """The rotation learner on Flatland: each action's learned rotation angle per latent plane."""
    learner = RepresentationLearner(Flatland(), "rotation", latent_dim=4, seed=0)
    learner.train(steps(1000), progress=False)
    return [learner.plot_representation(out / "flatland_action_planes.png")]


def shapes3d(out: Path) -> list[Path]:
    """A β-VAE's latent traversal on Shapes3D: the real file when present, else the small real-format copy."""
    from dynrep.data.synthetic import write_synthetic
    with tempfile.TemporaryDirectory() as tmp:
        try:
            path = dataset_path("shapes3d")
        except FileNotFoundError:
            path = write_synthetic("shapes3d", tmp)
        env = Shapes3D(path, progress=False)
        learner = RepresentationLearner(env, "beta_vae", latent_dim=6, seed=0)
        learner.train(steps(1500), progress=False)
        return [learner.animate(out / "shapes3d_traversal.gif", kind="traversal")]


def toy_nn(out: Path) -> list[Path]:
    """Mechanism sparsity on toy-nn: each true latent against its matched learned latent on held-out frames
    (the MCC permutation; toy-nn's data are windows of two frames, so the truth is shown point by point)."""
    env = ToyNN("action_sparsity_non_trivial", num_samples=100_000)
    learner = RepresentationLearner(env, "mechanism_sparsity", reg_a=16.0, lr=5e-3, batch_size=512,
                                    mlp_hidden=(256,) * 3, transition_hidden=64, transition_layers=2,
                                    learn_decoder_var=True, decoder_logvar_init=-10.0, seed=0)
    learner.train(steps(2000), progress=False)
    test = held_out_env(env)
    result = compute("mcc", test, learner.model.representation, seed=0, num_train=10_000)
    frames = test.sample_trajectories(1000, 0, np.random.default_rng(0))
    codes, truth = learner.encode(frames.obs[:, 0]).numpy(), frames.factors[:, 0].numpy()
    columns = 5
    rows = -(-truth.shape[1] // columns)
    fig, axes = plt.subplots(rows, columns, figsize=(2.2 * columns, 2.3 * rows), squeeze=False)
    for ax in axes.flat[truth.shape[1]:]:
        ax.axis("off")
    for k, ax in enumerate(axes.flat[:truth.shape[1]]):
        learned = codes[:, result["permutation"][k]]
        ax.scatter(truth[:, k], learned, s=2, alpha=0.4)
        ax.set_title(f"z{k}: |r| = {abs(np.corrcoef(truth[:, k], learned)[0, 1]):.2f}", fontsize="small")
        ax.set_xlabel("true", fontsize="small")
    for ax in axes[:, 0]:
        ax.set_ylabel("matched learned", fontsize="small")
    fig.suptitle(f"toy-nn action_sparsity_non_trivial, mechanism sparsity: MCC {result['mcc']:.2f} (held out)")
    fig.tight_layout()
    path = out / "toy_nn_latents.png"
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return [path]


def pendulum(out: Path) -> list[Path]:
    """ICM-VAE on Pendulum: do(variable = v) swept for each causal variable."""
    learner = RepresentationLearner(Pendulum(image_size=32), "icm_vae", warmup_steps=1100, seed=0)
    learner.train(steps(1200), progress=False)
    return [learner.animate(out / "pendulum_interventions.gif", kind="traversal")]


def generalisation(out: Path) -> list[Path]:
    """A VAE trained on one part of a Circles split (the world and rate of benchmarks/models.py): training vs
    held-out frames and their reconstructions."""
    train, test = Circles(grid=16, radius=4, image_size=32).split("circles/recomb2range/midpos")
    learner = RepresentationLearner(train, "vae", latent_dim=4, lr=1e-3, seed=0)
    learner.train(steps(3000), progress=False)
    rows = []
    for env in (train, test):
        obs = env.sample_trajectories(8, 0, np.random.default_rng(1)).obs[:, 0]
        recon = learner.decode(learner.encode(obs)).numpy()
        rows += [env.observation_to_image(obs.numpy()), env.observation_to_image(recon)]
    fig, axes = plt.subplots(4, 8, figsize=(8, 4.4))
    titles = ["training frames", "their reconstructions", "held-out frames", "their reconstructions"]
    for r, (images, title) in enumerate(zip(rows, titles)):
        for c, ax in enumerate(axes[r]):
            ax.imshow(images[c])
            ax.set_xticks([]), ax.set_yticks([])
        axes[r, 0].set_ylabel(title, rotation=0, ha="right", va="center", fontsize="small")
    fig.suptitle("circles/recomb2range/midpos: a VAE trained on the training part")
    fig.tight_layout()
    path = out / "generalisation_reconstructions.png"
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return [path]


PICTURES = {"gridworld": gridworld, "flatland": flatland, "shapes3d": shapes3d, "toy_nn": toy_nn,
            "pendulum": pendulum, "generalisation": generalisation}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", action="append", choices=sorted(PICTURES), help="one group (repeatable)")
    parser.add_argument("--out", type=Path, default=GALLERY, help=f"output directory (default: {GALLERY})")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    for name in args.only or PICTURES:
        for path in PICTURES[name](args.out):
            print(f"{path}  ({path.stat().st_size / 1024:.0f} KiB)", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

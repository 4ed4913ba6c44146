"""VAE family on 64x64 data side by side with its peers (issue 18 item 3): ms per training step.

Every contender trains the same network, the 32-32-64-64 Burgess coder of dynrep's defaults (conv k4 s2 p1,
FC 1024-256, 10 latents; 764,245 parameters each, asserted), on 64x64 one-channel Circles images
(dSprites-sized), Adam at the model's rate, measured in interleaved rounds in this one process:

* ``dynrep train``: ``RepresentationLearner(...).train`` (the normal data path: uint8 frames sampled from
  the world every step, converted once, fused Adam) on ``Circles()``;
* ``dynrep bare``: the same step written out (``model.loss``, backward, optimiser step) on the learner's
  own trainer; the two should agree (``train`` costs nothing over the bare step);
* ``pythae``: pythae 0.1.2's ``BetaVAE`` / ``BetaTCVAE`` (MWS, ``use_mss=False`` as dynrep's default) with
  the identical network wrapped in its encoder/decoder classes, stepped as its ``BaseTrainer`` does
  (``model(inputs)``, ``zero_grad``, backward, ``torch.optim.Adam`` step), on float batches indexed from a
  pool of the same images;
* ``disent``: **an in-file re-implementation** of disent 0.9.3's training step (disent needs Python >= 3.12
  and torchvision, neither available here), written from its code (``Vae.do_training_step``,
  ``LatentDistsHandlerNormal``, ``ReconLossHandlerBernoulli``, ``BetaVae``, ``BetaTcVae``) with its ops:
  ``torch.distributions.Normal`` posterior and prior, ``rsample``, analytic ``kl_divergence``, BCE with logits
  reduced ``mean_sum``, and for β-TCVAE ``β·KL + (β − 1)·TC`` with TC from the full ``[B, B, D]``
  log-density matrix and two ``logsumexp``; ``torch.optim.Adam`` as its default optimiser. Its own encoder
  uses padding 2 and a 1600-unit FC; here it gets the identical network instead.

Memory between steps: dynrep's trainer keeps freed blocks in the heap (``dynrep.memory.keep_heap``), so its
steps fault in no fresh pages, where glibc's defaults unmap every freed block of 32 MB or more and trim the
heaps (~48,000 page faults per beta-TCVAE step at batch 256). The thresholds are process-wide, so each
contender's rounds run under its own: dynrep's, or for a peer glibc's thresholds as they settle once such a
block has been freed (32 MB mmap, 64 MB trim; no more page faults than glibc's defaults give it).
``--allocator keep`` runs every contender under dynrep's instead (the code alone compared). Page faults per
step are printed beside each time.

The peers run from the benchmark-only venv that ``benchmarks/setup_peers.sh`` creates (pythae is never a
dynrep dependency); without pythae installed its rows are skipped.

The floor: all contenders call the same oneDNN convolution kernels. ``torch.profiler`` over dynrep's bare
step gives the time inside the convolution and transposed-convolution kernels (forward and backward); a
step cannot cost less than that, so ``faster peer / conv time`` is the best ratio any implementation of
the identical network could reach, printed beside the measured one.

    bash benchmarks/setup_peers.sh                                    # once: ./.venv-peers (or $PEERS_VENV)
    PYTHONPATH=. .venv-peers/bin/python benchmarks/peers.py           # 7 rounds x 5 steps, ~10 minutes
    PYTHONPATH=. .venv-peers/bin/python benchmarks/peers.py --quick   # ~1 minute
"""
from __future__ import annotations

import argparse
import math
import os
import resource
import statistics
import time

import torch
import torch.nn.functional as F
from torch import nn

from dynrep import Circles, RepresentationLearner, memory

try:
    from pythae.models import BetaTCVAE, BetaTCVAEConfig, BetaVAE, BetaVAEConfig
    from pythae.models.base.base_utils import ModelOutput
    from pythae.models.nn import BaseDecoder, BaseEncoder
except ImportError:  # the peers venv is missing: dynrep and the disent re-implementation still run
    BetaVAE = None

PARAMETERS = 764_245
LATENT = 10
#: (model, batch, beta): dynrep's defaults (β-VAE β = 4, lr 5e-4; β-TCVAE β = 6, lr 1e-3).
CONFIGS = (("beta_vae", 64, 4.0), ("beta_vae", 256, 4.0), ("beta_tcvae", 64, 6.0), ("beta_tcvae", 256, 6.0))
CONV_OPS = ("mkldnn_convolution", "convolution_backward", "mkldnn_convolution_backward", "_convolution",
            "convolution", "conv2d", "conv_transpose2d")


def dynrep_learner(model: str, batch: int) -> RepresentationLearner:
    learner = RepresentationLearner(Circles(), model, seed=0, device="cpu", batch_size=batch)
    count = sum(p.numel() for p in learner.model.parameters())
    assert count == PARAMETERS, f"dynrep's network has {count} parameters, not {PARAMETERS}"
    return learner


def identical_nets(learner: RepresentationLearner) -> tuple[nn.Module, nn.Module]:
    """Fresh copies of dynrep's encoder and decoder (same architecture and initial weights), in the default
    contiguous memory format as a peer would hold them."""
    model = learner.model
    encoder, decoder = model.build_networks()
    encoder.load_state_dict(model.encoder.state_dict())
    decoder.load_state_dict(model.decoder.state_dict())
    count = sum(p.numel() for p in [*encoder.parameters(), *decoder.parameters()])
    assert count == PARAMETERS, f"the peers' network has {count} parameters, not {PARAMETERS}"
    return encoder, decoder


def image_pool(size: int = 4096) -> torch.Tensor:
    """Float images ``[size, 1, 64, 64]`` in [0, 1] from the same world (a peer's dataset in memory)."""
    return Circles().sample_trajectories(size, 0, 0).obs[:, 0].float().div_(255.0)


class DynrepBare:
    """The trainer's step written out: sample, loss, zero_grad(set_to_none), backward, fused Adam."""

    def __init__(self, learner: RepresentationLearner):
        self.trainer = learner.trainer

    def step(self) -> None:
        t = self.trainer
        out = t.model.loss(t.sample_batch(), t.step, t.generator)
        t.optimizer.zero_grad(set_to_none=True)
        out.total.backward()
        t.optimizer.step()


class DynrepTrain:
    """``learner.train(steps=n)``: the normal data path."""

    def __init__(self, learner: RepresentationLearner):
        self.learner = learner

    def steps(self, n: int) -> None:
        self.learner.train(steps=n, progress=False, log_every=None)


class Disent:
    """Re-implementation of disent 0.9.3's ``BetaVae`` / ``BetaTcVae`` training step (see the module docstring)."""

    def __init__(self, learner: RepresentationLearner, model: str, beta: float, pool: torch.Tensor, batch: int):
        self.encoder, self.decoder = identical_nets(learner)
        self.tc, self.beta, self.pool, self.batch = model == "beta_tcvae", beta, pool, batch
        params = [*self.encoder.parameters(), *self.decoder.parameters()]
        self.optimizer = torch.optim.Adam(params, lr=learner.model.config.lr)
        self.rng = torch.Generator().manual_seed(1)

    @staticmethod
    def _log_density(samples, mean, log_var):
        return -0.5 * ((samples - mean) ** 2 * torch.exp(-log_var) + log_var + math.log(2 * math.pi))

    def _total_correlation(self, z, mean, log_var):
        log_q = self._log_density(z[:, None], mean[None], log_var[None])           # [B, B, D]
        log_prod = torch.logsumexp(log_q, dim=1).sum(1)
        log_qz = torch.logsumexp(log_q.sum(2), dim=1)
        return (log_qz - log_prod).mean()

    def step(self) -> None:
        x = self.pool[torch.randint(len(self.pool), (self.batch,), generator=self.rng)]
        mean, log_var = self.encoder(x).chunk(2, dim=-1)
        posterior = torch.distributions.Normal(mean, torch.exp(0.5 * log_var))
        prior = torch.distributions.Normal(torch.zeros_like(mean), torch.ones_like(mean))
        z = posterior.rsample()
        recon = F.binary_cross_entropy_with_logits(self.decoder(z), x, reduction="none").flatten(1).sum(-1).mean()
        kl = torch.distributions.kl_divergence(posterior, prior).flatten(1).sum(-1).mean()
        loss = recon + self.beta * kl
        if self.tc:
            loss = loss + (self.beta - 1.0) * self._total_correlation(z, posterior.mean, torch.log(posterior.variance))
        self.optimizer.zero_grad()
        loss.backward()
        self.optimizer.step()


def pythae_wrappers():
    class Encoder(BaseEncoder):
        def __init__(self, net):
            super().__init__()
            self.net = net

        def forward(self, x):
            mean, log_var = self.net(x).chunk(2, dim=-1)
            return ModelOutput(embedding=mean, log_covariance=log_var)

    class Decoder(BaseDecoder):
        def __init__(self, net):
            super().__init__()
            self.net = net

        def forward(self, z):
            return ModelOutput(reconstruction=torch.sigmoid(self.net(z)))

    return Encoder, Decoder


class Pythae:
    """pythae's ``BetaVAE`` / ``BetaTCVAE`` on the identical network, stepped as its ``BaseTrainer`` does."""

    def __init__(self, learner: RepresentationLearner, model: str, beta: float, pool: torch.Tensor, batch: int):
        encoder_cls, decoder_cls = pythae_wrappers()
        encoder, decoder = identical_nets(learner)
        common = {"input_dim": (1, 64, 64), "latent_dim": LATENT, "reconstruction_loss": "bce"}
        if model == "beta_tcvae":
            config = BetaTCVAEConfig(**common, beta=beta, alpha=1.0, gamma=1.0, use_mss=False)
            self.model = BetaTCVAE(config, encoder=encoder_cls(encoder), decoder=decoder_cls(decoder))
        else:
            self.model = BetaVAE(BetaVAEConfig(**common, beta=beta), encoder=encoder_cls(encoder),
                                 decoder=decoder_cls(decoder))
        count = sum(p.numel() for p in self.model.parameters())
        assert count == PARAMETERS, f"pythae's model has {count} parameters, not {PARAMETERS}"
        self.model.train()
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=learner.model.config.lr)
        self.pool, self.batch = pool, batch
        self.rng = torch.Generator().manual_seed(2)

    def step(self) -> None:
        x = self.pool[torch.randint(len(self.pool), (self.batch,), generator=self.rng)]
        loss = self.model({"data": x}, epoch=1, dataset_size=len(self.pool), uses_ddp=False).loss
        self.optimizer.zero_grad()
        loss.backward()
        self.optimizer.step()


#: glibc's mmap and trim thresholds once its dynamic thresholds have settled after a 32 MB block was freed (as
#: a batch-256 step frees several): what a peer's process runs with, emulated between dynrep's rounds.
GLIBC_SETTLED = (32 << 20, 64 << 20)


def use_allocator(contender, policy: str) -> None:
    """Set the process's malloc thresholds for ``contender``'s next steps. ``"own"``: dynrep's
    (:func:`dynrep.memory.keep_heap`, which its trainer calls) for dynrep, glibc's settled thresholds
    (:data:`GLIBC_SETTLED`, no fewer page faults than glibc's defaults give) for a peer; ``"keep"``: dynrep's for
    every contender (the code alone compared)."""
    if policy == "keep" or isinstance(contender, (DynrepTrain, DynrepBare)):
        memory.keep_heap()
    elif memory._libc() is not None:
        mmap, trim = GLIBC_SETTLED
        memory._libc().mallopt(memory.M_MMAP_THRESHOLD, mmap)
        memory._libc().mallopt(memory.M_TRIM_THRESHOLD, trim)


def time_steps(contender, n: int, policy: str = "keep") -> tuple[float, float]:
    """(ms per step, minor page faults per step) over ``n`` steps under the allocator ``policy``
    (:func:`use_allocator`)."""
    use_allocator(contender, policy)
    faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    start = time.perf_counter()
    if isinstance(contender, DynrepTrain):
        contender.steps(n)
    else:
        for _ in range(n):
            contender.step()
    seconds = time.perf_counter() - start
    return seconds * 1000.0 / n, (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults) / n


def conv_share(bare: DynrepBare, steps: int) -> tuple[float, float]:
    """``(ms per step inside convolution kernels, ms per step in total)`` of ``steps`` bare steps, by
    ``torch.profiler`` (self CPU time of the aten convolution ops, forward and backward)."""
    from torch.profiler import ProfilerActivity, profile
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        start = time.perf_counter()
        for _ in range(steps):
            bare.step()
        total = (time.perf_counter() - start) * 1000.0 / steps
    conv_us = sum(e.self_cpu_time_total for e in prof.key_averages() if e.key.removeprefix("aten::") in CONV_OPS)
    return conv_us / 1000.0 / steps, total


def run_config(model: str, batch: int, beta: float, rounds: int, steps: int, pool: torch.Tensor,
               policy: str) -> None:
    learners = {"train": dynrep_learner(model, batch), "bare": dynrep_learner(model, batch)}
    contenders = {"dynrep train": DynrepTrain(learners["train"]), "dynrep bare": DynrepBare(learners["bare"]),
                  "disent (re-impl)": Disent(learners["bare"], model, beta, pool, batch)}
    if BetaVAE is not None:
        contenders["pythae"] = Pythae(learners["bare"], model, beta, pool, batch)
    for contender in contenders.values():  # warm-up (oneDNN primitive caches, allocator)
        time_steps(contender, 2)
    times = {name: [] for name in contenders}
    faults = {name: [] for name in contenders}
    loads = []
    for r in range(rounds):
        order = list(contenders.items())
        if r % 2:
            order.reverse()
        for name, contender in order:
            ms, page_faults = time_steps(contender, steps, policy)
            times[name].append(ms)
            faults[name].append(page_faults)
        loads.append(os.getloadavg()[0])
    memory.keep_heap()  # the profiled bare step below runs as dynrep's steps do
    medians = {name: statistics.median(ts) for name, ts in times.items()}
    conv_ms, profiled_ms = conv_share(contenders["dynrep bare"], max(2, steps))
    peers = {k: v for k, v in medians.items() if not k.startswith("dynrep")}
    fastest_name = min(peers, key=peers.get)
    fastest = peers[fastest_name]
    print(f"\n{model} batch {batch} (beta {beta}), {rounds} rounds x {steps} steps, "
          f"load {min(loads):.2f}-{max(loads):.2f}")
    for name, value in medians.items():
        spread = f"{min(times[name]):.1f}-{max(times[name]):.1f}"
        print(f"  {name:18s} {value:8.1f} ms/step  (range {spread})  faster peer / this = {fastest / value:.2f}x"
              f"  {statistics.median(faults[name]):8.0f} page faults/step")
    print(f"  dynrep train / bare = {medians['dynrep train'] / medians['dynrep bare']:.3f}")
    print(f"  conv kernels: {conv_ms:.1f} ms of a profiled {profiled_ms:.1f} ms bare step "
          f"({conv_ms / profiled_ms:.0%}); best possible ratio over {fastest_name} at this network "
          f"= {fastest:.1f} / {conv_ms:.1f} = {fastest / conv_ms:.2f}x; measured {fastest / medians['dynrep bare']:.2f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="3 rounds of 3 steps, batch 256 skipped for beta_vae")
    parser.add_argument("--rounds", type=int, default=None, help="interleaved rounds (default 7, quick 3)")
    parser.add_argument("--steps", type=int, default=None, help="steps per contender per round (default 5, quick 3)")
    parser.add_argument("--threads", type=int, default=2, help="torch threads (default 2, the machine's cores)")
    parser.add_argument("--allocator", choices=("own", "keep"), default="own",
                        help="malloc thresholds: each library's own (dynrep keeps its heap, the peers run with "
                             "glibc's settled thresholds; default) or dynrep's for all (the code alone compared)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    rounds = args.rounds or (3 if args.quick else 7)
    steps = args.steps or (3 if args.quick else 5)
    configs = [c for c in CONFIGS if not (args.quick and c[:2] == ("beta_vae", 256))]
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, pythae "
          f"{'present' if BetaVAE is not None else 'MISSING (run benchmarks/setup_peers.sh)'}, "
          f"load {os.getloadavg()[0]:.2f}, allocator {args.allocator}")
    pool = image_pool()
    for model, batch, beta in configs:
        run_config(model, batch, beta, rounds, steps, pool, args.allocator)


if __name__ == "__main__":
    main()

"""FactorVAE: dimension permutation, discriminator, loss terms by hand, gradient isolation, training."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from dynrep import Circles, RepresentationLearner, build_model
from dynrep.models.factor_vae import discriminator, permute_dims

TINY = {"latent_dim": 3, "batch_size": 8, "channels": (4, 8), "hidden": 16, "discriminator_hidden": 8,
        "discriminator_layers": 2}


def tiny_env():
    return Circles(grid=8, radius=3.0, image_size=16)


def test_permute_dims_shuffles_each_column_independently():
    z = torch.arange(40, dtype=torch.float32).view(10, 4) * torch.tensor([1.0, 100.0, 1e4, 1e6])
    out = permute_dims(z, torch.Generator().manual_seed(0))
    for d in range(4):
        assert sorted(out[:, d].tolist()) == sorted(z[:, d].tolist())  # same values per column
    rows = {tuple(r) for r in z.tolist()}
    assert sum(tuple(r) in rows for r in out.tolist()) < 10  # rows are mixed across columns


def test_discriminator_architecture():
    net = discriminator(3, 8, 4)  # 3 -> 8 x 4 (LeakyReLU 0.2) -> 2
    linears = [m for m in net if isinstance(m, torch.nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linears] == [(3, 8), (8, 8), (8, 8), (8, 8), (8, 2)]
    assert [m.negative_slope for m in net if isinstance(m, torch.nn.LeakyReLU)] == [0.2] * 4
    assert isinstance(net[-1], torch.nn.Linear)


def test_loss_terms_and_gradient_isolation():
    model = build_model("factor_vae", tiny_env(), **TINY)
    batch = tiny_env().sample_trajectories(8, 0, 0)
    out = model.loss(batch, 0, torch.Generator().manual_seed(1))
    target, post, z = model.sample_posterior(batch, torch.Generator().manual_seed(1))
    logits = model.discriminator(z[:4])
    assert out.terms["total_correlation"].item() == pytest.approx((logits[:, 0] - logits[:, 1]).mean().item(),
                                                                 rel=1e-5)
    assert set(out.terms) == {"reconstruction", "kl", "total_correlation", "discriminator",
                              "discriminator_accuracy"}
    out.total.backward(retain_graph=True)
    disc_grads = [p.grad.clone() for p in model.discriminator.parameters()]
    enc_grads = [p.grad.clone() for p in model.encoder.parameters()]
    model.zero_grad()
    out.terms["discriminator"].backward()  # the discriminator's gradient is that of its own loss only
    for g, p in zip(disc_grads, model.discriminator.parameters()):
        torch.testing.assert_close(g, p.grad)
    assert all(p.grad is None or torch.all(p.grad == 0) for p in model.encoder.parameters())
    assert any(torch.any(g != 0) for g in enc_grads)  # the VAE part does train the encoder
    with pytest.raises(ValueError, match="must be >= 4"):
        build_model("factor_vae", tiny_env(), batch_size=1)


def test_loss_by_hand():
    # specs/latent.md 1.5 (LiLS FactorLoss): reconstruction over the batch, KL and TC over its first half, the
    # discriminator telling the first half's z (class 0) from the second half's, permuted (class 1)
    torch.manual_seed(0)  # the weights: with some draws an alternative below falls within the tolerances
    model = build_model("factor_vae", tiny_env(), **{**TINY, "gamma": 7.5})
    batch = tiny_env().sample_trajectories(8, 0, 0)
    out = model.loss(batch, 0, torch.Generator().manual_seed(1))
    g = torch.Generator().manual_seed(1)
    target, post, z = model.sample_posterior(batch, g)
    shuffled = permute_dims(z[4:], g)  # the loss's next draw from the same generator
    nll = F.binary_cross_entropy_with_logits(model.decode_logits(z), target, reduction="none").flatten(1).sum(1)
    kl = (0.5 * (post.mean ** 2 + post.logvar.exp() - 1 - post.logvar)).sum(1)
    real, fake = model.discriminator(z[:4]), model.discriminator(shuffled)
    zeros, ones = torch.zeros(4, dtype=torch.long), torch.ones(4, dtype=torch.long)
    tc = (real[:, 0] - real[:, 1]).mean()
    disc = 0.5 * (F.cross_entropy(real, zeros) + F.cross_entropy(fake, ones))
    accuracy = torch.cat([real.argmax(1) == 0, fake.argmax(1) == 1]).float().mean()
    terms = {k: v.item() for k, v in out.terms.items()}
    assert terms["reconstruction"] == pytest.approx(nll.mean().item(), rel=1e-5)
    assert terms["kl"] == pytest.approx(kl[:4].mean().item(), rel=1e-5)
    assert terms["total_correlation"] == pytest.approx(tc.item(), rel=1e-5)
    assert terms["discriminator"] == pytest.approx(disc.item(), rel=1e-5)
    assert terms["discriminator_accuracy"] == pytest.approx(accuracy.item())
    expected = nll.mean() + kl[:4].mean() + 7.5 * tc + disc
    assert out.total.item() == pytest.approx(expected.item(), abs=1e-4)
    # each alternative differs from the right value by more than the tolerances above
    assert abs(nll.mean() - nll[:4].mean()).item() > 1e-3
    assert abs(6.5 * tc.item()) > 1e-3
    swapped = 0.5 * (F.cross_entropy(real, ones) + F.cross_entropy(fake, zeros))
    unpermuted = 0.5 * (F.cross_entropy(real, zeros) + F.cross_entropy(model.discriminator(z[4:]), ones))
    assert abs(swapped - disc).item() > 1e-4 and abs(unpermuted - disc).item() > 1e-4


def test_odd_frame_count_leaves_the_last_frame_out_of_the_halves():
    model = build_model("factor_vae", tiny_env(), **TINY)
    batch = tiny_env().sample_trajectories(7, 0, 0)
    out = model.loss(batch, 0, torch.Generator().manual_seed(2))
    g = torch.Generator().manual_seed(2)
    target, post, z = model.sample_posterior(batch, g)
    real, fake = model.discriminator(z[:3]), model.discriminator(permute_dims(z[3:6], g))
    disc = 0.5 * (F.cross_entropy(real, torch.zeros(3, dtype=torch.long))
                  + F.cross_entropy(fake, torch.ones(3, dtype=torch.long)))
    nll = F.binary_cross_entropy_with_logits(model.decode_logits(z), target, reduction="none").flatten(1).sum(1)
    assert out.terms["discriminator"].item() == pytest.approx(disc.item(), rel=1e-5)
    assert out.terms["reconstruction"].item() == pytest.approx(nll.mean().item(), rel=1e-5)  # all 7 frames


def test_discriminator_has_its_own_optimiser_settings():
    learner = RepresentationLearner(tiny_env(), model="factor_vae", seed=0, **TINY)
    groups = learner.trainer.optimizer.param_groups
    model = learner.model
    vae_group, disc_group = model.parameter_groups()
    assert disc_group["betas"] == (0.5, 0.9) and disc_group["lr"] == 1e-4
    assert {id(p) for p in disc_group["params"]} == {id(p) for p in model.discriminator.parameters()}
    assert not {id(p) for p in vae_group["params"]} & {id(p) for p in disc_group["params"]}
    assert len(groups) == 2 and groups[1]["betas"] == (0.5, 0.9) and groups[0]["betas"] == (0.9, 0.999)


def test_discriminator_separates_dependent_latents_from_their_permutation():
    model = build_model("factor_vae", tiny_env(), **{**TINY, "discriminator_hidden": 32})
    group = model.parameter_groups()[1]
    optimiser = torch.optim.Adam(group["params"], lr=1e-2, betas=group["betas"])
    g = torch.Generator().manual_seed(0)
    for _ in range(300):
        x = torch.randn(128, 1, generator=g)
        z = torch.cat([x, x, torch.randn(128, 1, generator=g)], 1)  # dims 0 and 1 fully dependent
        logits = model.discriminator(torch.cat([z, permute_dims(z, g)]))
        labels = torch.cat([torch.zeros(128, dtype=torch.long), torch.ones(128, dtype=torch.long)])
        loss = F.cross_entropy(logits, labels)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    assert (logits.argmax(1) == labels).float().mean() > 0.8


def test_training_learns_and_round_trips(tmp_path):
    learner = RepresentationLearner(tiny_env(), model="factor_vae", seed=0, lr=3e-3, **TINY)
    learner.train(steps=200, progress=False)
    recon = np.array(learner.history["reconstruction"])
    assert recon[-20:].mean() < recon[:20].mean()
    learner.save(tmp_path / "ck")
    loaded = RepresentationLearner.load(tmp_path / "ck")
    learner.train(steps=2, progress=False)
    loaded.train(steps=2, progress=False)
    assert learner.history["loss"] == loaded.history["loss"]

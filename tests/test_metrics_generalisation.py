"""dynrep.metrics.generalisation: held-out reconstruction vs. held-out latent-factor alignment."""
from __future__ import annotations

import numpy as np
import pytest
from sklearn.linear_model import LinearRegression
from sklearn.metrics import r2_score
from sklearn.neural_network import MLPRegressor
from sklearn.preprocessing import StandardScaler

from dynrep.metrics.generalisation import generalisation_report


def _split(n_train=600, n_test=200, seed=0):
    rng = np.random.RandomState(seed)
    factors = np.stack([rng.randint(0, 10, size=n_train + n_test), rng.randint(0, 6, size=n_train + n_test)], 1)
    mixing = np.array([[0.3, -0.1, 0.5], [0.2, 0.4, 0.0]])
    codes = np.concatenate([factors @ mixing, rng.normal(size=(len(factors), 1))], axis=1)
    codes += 0.2 * rng.normal(size=codes.shape)
    errors = rng.uniform(size=n_train + n_test)
    return (errors[:n_train], errors[n_train:], codes[:n_train], factors[:n_train], codes[n_train:],
            factors[n_train:])


def test_parity_with_sklearn_r2():
    train_err, test_err, train_codes, train_f, test_codes, test_f = _split()
    out = generalisation_report(train_err, test_err, train_codes, train_f, test_codes, test_f)
    model = LinearRegression().fit(train_codes, train_f.astype(float))
    per_factor = r2_score(test_f, model.predict(test_codes), multioutput="raw_values")
    assert out["alignment_per_factor_test_r2"] == pytest.approx(per_factor, abs=1e-6)
    assert out["alignment_test_r2"] == pytest.approx(r2_score(test_f, model.predict(test_codes)), abs=1e-6)
    assert out["alignment_train_r2"] == pytest.approx(r2_score(train_f, model.predict(train_codes)), abs=1e-6)
    assert out["reconstruction_train"] == pytest.approx(train_err.mean())
    assert out["reconstruction_gap"] == pytest.approx(test_err.mean() - train_err.mean())
    assert 0.8 < out["alignment_test_r2"] < 1.0


def test_encoder_failure_versus_decoder_failure():
    train_err, _, train_codes, train_f, test_codes, test_f = _split()
    rng = np.random.RandomState(1)
    # encoder failure: held-out images are mapped to unrelated latents
    encoder = generalisation_report(train_err, train_err[:200], train_codes, train_f,
                                    rng.permutation(test_codes), test_f)
    assert encoder["alignment_train_r2"] > 0.8 and encoder["alignment_test_r2"] < 0.1
    # decoder failure: latents still aligned, but held-out reconstructions are bad
    decoder = generalisation_report(train_err, 10.0 + train_err[:200], train_codes, train_f, test_codes, test_f)
    assert decoder["alignment_test_r2"] > 0.8 and decoder["reconstruction_gap"] > 9.0


def test_train_mean_baseline_handles_a_fixed_held_out_factor():
    train_err, test_err, train_codes, train_f, test_codes, test_f = _split()
    test_f = test_f.copy()
    test_f[:, 1] = 3
    with pytest.raises(ValueError, match="^test_factors: factor 1 .* so its R² is undefined .*baseline='train_mean'\\)$"):
        generalisation_report(train_err, test_err, train_codes, train_f, test_codes, test_f)
    out = generalisation_report(train_err, test_err, train_codes, train_f, test_codes, test_f, baseline="train_mean")
    predicted = LinearRegression().fit(train_codes, train_f).predict(test_codes)
    expected = 1 - ((test_f - predicted) ** 2).sum(0) / ((test_f - train_f.mean(0)) ** 2).sum(0)
    assert out["alignment_per_factor_test_r2"] == pytest.approx(expected, abs=1e-9)
    default = generalisation_report(train_err, test_err, *_split()[2:])
    same = generalisation_report(train_err, test_err, *_split()[2:], baseline="train_mean")
    assert same["alignment_train_r2"] == pytest.approx(default["alignment_train_r2"], abs=1e-12)


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
@pytest.mark.filterwarnings("error::sklearn.exceptions.DataConversionWarning")  # one factor: a 1-D target
def test_mlp_regressor_fits_a_nonlinear_code_and_is_seeded():
    rng = np.random.RandomState(2)
    factors = rng.randint(0, 12, size=(500, 1))
    angle = factors[:, 0] / 12 * 2 * np.pi * 0.95  # nearly a full circle: not linearly decodable
    codes = np.stack([np.cos(angle), np.sin(angle)], 1)
    args = (np.ones(400), np.ones(100), codes[:400], factors[:400], codes[400:], factors[400:])
    linear = generalisation_report(*args)
    mlp = generalisation_report(*args, regressor="mlp", seed=3)
    assert mlp["alignment_test_r2"] > 0.9 > linear["alignment_test_r2"]
    assert generalisation_report(*args, regressor="mlp", seed=3)["alignment_test_r2"] == mlp["alignment_test_r2"]
    assert generalisation_report(*args, regressor="mlp", seed=4)["alignment_test_r2"] != mlp["alignment_test_r2"]
    assert mlp["alignment_per_factor_test_r2"].shape == (1,)


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_mlp_two_factors_match_the_documented_procedure_with_seed_0_by_default():
    """One MLPRegressor(random_state=RandomState(0)) on standardised codes and per-factor standardised factors."""
    train_err, test_err, train_codes, train_f, test_codes, test_f = _split(n_train=200, n_test=80)
    train_f, test_f = train_f * [1.0, 5.0] + [0.0, 40.0], test_f * [1.0, 5.0] + [0.0, 40.0]
    scaler = StandardScaler().fit(train_codes)
    mean, std = train_f.mean(axis=0), train_f.std(axis=0)
    net = MLPRegressor(random_state=np.random.RandomState(0)).fit(scaler.transform(train_codes),
                                                                  (train_f - mean) / std)
    train_pred = net.predict(scaler.transform(train_codes)) * std + mean
    test_pred = net.predict(scaler.transform(test_codes)) * std + mean
    out = generalisation_report(train_err, test_err, train_codes, train_f, test_codes, test_f, regressor="mlp")
    assert out["alignment_per_factor_test_r2"] == pytest.approx(
        r2_score(test_f, test_pred, multioutput="raw_values"), abs=1e-9)
    assert out["alignment_train_r2"] == pytest.approx(r2_score(train_f, train_pred), abs=1e-9)
    assert out["alignment_per_factor_test_r2"].shape == (2,) and out["alignment_test_r2"] > 0.8


def test_continuous_factors_are_regressed_as_given():
    train_err, test_err, train_codes, train_f, test_codes, test_f = _split()
    rng = np.random.RandomState(5)
    train_f = train_f + rng.uniform(-0.4, 0.4, size=train_f.shape)
    test_f = test_f + rng.uniform(-0.4, 0.4, size=test_f.shape)
    out = generalisation_report(train_err, test_err, train_codes, train_f, test_codes, test_f)
    model = LinearRegression().fit(train_codes, train_f)
    assert out["alignment_per_factor_test_r2"] == pytest.approx(
        r2_score(test_f, model.predict(test_codes), multioutput="raw_values"), abs=1e-9)
    assert out["alignment_train_r2"] == pytest.approx(r2_score(train_f, model.predict(train_codes)), abs=1e-9)


def test_a_single_held_out_sample_with_the_train_mean_baseline():
    train_err, test_err, train_codes, train_f, test_codes, test_f = _split()
    out = generalisation_report(train_err, test_err[:1], train_codes, train_f, test_codes[:1], test_f[:1],
                                baseline="train_mean")
    predicted = LinearRegression().fit(train_codes, train_f).predict(test_codes[:1])[0]
    expected = 1 - (test_f[0] - predicted) ** 2 / (test_f[0] - train_f.mean(axis=0)) ** 2
    assert out["alignment_per_factor_test_r2"] == pytest.approx(expected, abs=1e-9)
    assert out["reconstruction_test"] == pytest.approx(test_err[0])
    assert out["reconstruction_gap"] == pytest.approx(test_err[0] - train_err.mean())


def test_errors():
    train_err, test_err, train_codes, train_f, test_codes, test_f = _split()
    with pytest.raises(ValueError, match="train_recon_errors must be a 1-D array"):
        generalisation_report(train_err[:, None], test_err, train_codes, train_f, test_codes, test_f)
    with pytest.raises(ValueError, match="test_codes must have 4 columns"):
        generalisation_report(train_err, test_err, train_codes, train_f, test_codes[:, :3], test_f)
    with pytest.raises(ValueError, match="test_factors must have 200 rows"):
        generalisation_report(train_err, test_err, train_codes, train_f, test_codes, test_f[:10])
    with pytest.raises(ValueError, match="test_factors must have 2 columns like train_factors, got 1"):
        generalisation_report(train_err, test_err, train_codes, train_f, test_codes, test_f[:, :1])
    with pytest.raises(ValueError, match="baseline must be one of"):
        generalisation_report(train_err, test_err, train_codes, train_f, test_codes, test_f, baseline="zero")
    with pytest.raises(ValueError, match="^train_codes contains NaN"):
        generalisation_report(train_err, test_err, np.full_like(train_codes, np.nan), train_f, test_codes, test_f)
    with pytest.raises(ValueError, match=r"^test_codes must have shape \[num_samples, num_codes\]"):
        generalisation_report(train_err, test_err, train_codes, train_f, test_codes[:, 0], test_f)
    with pytest.raises(ValueError, match="^train_factors must have 600 rows"):
        generalisation_report(train_err, test_err, train_codes, train_f[:10], test_codes, test_f)
    with pytest.raises(ValueError, match="regressor must be one of"):
        generalisation_report(train_err, test_err, train_codes, train_f, test_codes, test_f, regressor="gbt")
    constant = train_f.copy()
    constant[:, 0] = 1
    with pytest.raises(ValueError, match="train_factors: column 0 is constant"):
        generalisation_report(train_err, test_err, train_codes, constant, test_codes, test_f)
    with pytest.raises(ValueError, match="test_recon_errors contains NaN"):
        generalisation_report(train_err, np.full(3, np.nan), train_codes, train_f, test_codes, test_f)

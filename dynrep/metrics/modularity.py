"""Modularity and explicitness (Ridgeway & Mozer 2018, "Learning Deep Disentangled Embeddings With the
F-Statistic Loss", Section 3).

Reference: ``disentanglement_lib/evaluation/metrics/modularity_explicitness.py``.
"""
from __future__ import annotations

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score

from .utils import NUM_BINS, check_not_constant, check_train_test, discretize, mutual_info_matrix


def modularity_explicitness(train_codes, train_factors, test_codes, test_factors, *, num_bins: int = NUM_BINS,
                            seed: int = 0) -> dict:
    """Modularity (does each code depend on one factor?) and explicitness (are factors linearly decodable?).

    Args:
        train_codes, test_codes: ``[N, D]`` / ``[M, D]`` float codes; no train code may be constant
            (the codes are standardised by the train std).
        train_factors, test_factors: ``[N, K]`` / ``[M, K]`` integer class indices, ``K >= 2``; every train
            factor must vary, and each test factor must take exactly the values its train factor takes.
        num_bins: bins of the histogram discretiser.
        seed: ``random_state=np.random.RandomState(seed)`` of the LogisticRegressions (the reference passes
            none; the default lbfgs solver is deterministic, so it does not change the result).

    Returns:
        ``"modularity"`` float: mean over codes of 1 - (Σ_k m²_ik - max_k m²_ik) / (max_k m²_ik · (K - 1)),
        0 for a code whose max MI is 0, with m = discrete MI of the binned **train** codes ``"mutual_info"``
        ``[D, K]``; ``"modularity_per_code"`` ``[D]``;
        ``"explicitness_train"``, ``"explicitness_test"`` floats: mean over factors of the macro-averaged
        one-vs-rest ROC-AUC of ``LogisticRegression()`` (sklearn defaults) fit on the train codes standardised
        with the train mean/std (``ddof=0``), scored on train / test; ``"explicitness_per_factor_train"``,
        ``"explicitness_per_factor_test"`` ``[K]``.

    The reference binarises each split's labels with its own ``MultiLabelBinarizer`` and pairs the columns
    with ``predict_proba``'s by position: silently wrong (or a shape error) when a test factor lacks a train
    class or has a new one. Here that raises; when the class sets agree the two are identical.
    """
    train_codes, train_factors, test_codes, test_factors = check_train_test(
        train_codes, train_factors, test_codes, test_factors)
    if train_factors.shape[1] < 2:
        raise ValueError(f"modularity needs at least 2 factors (it divides by K - 1), got {train_factors.shape[1]}")
    check_not_constant(train_codes, "train_codes")

    mutual_info = mutual_info_matrix(discretize(train_codes, num_bins), train_factors)
    squared = mutual_info ** 2
    peak = squared.max(axis=1)
    spread = np.divide(squared.sum(axis=1) - peak, peak * (squared.shape[1] - 1), out=np.ones_like(peak),
                       where=peak > 0)
    per_code = 1.0 - spread  # 0 where the max MI is 0

    mean, std = train_codes.mean(axis=0), train_codes.std(axis=0)
    x_train, x_test = (train_codes - mean) / std, (test_codes - mean) / std
    rng = np.random.RandomState(seed)
    auc = np.empty((2, train_factors.shape[1]))
    for j in range(train_factors.shape[1]):
        classifier = LogisticRegression(random_state=rng).fit(x_train, train_factors[:, j])
        differing = np.setxor1d(classifier.classes_, test_factors[:, j])
        if differing.size:
            raise ValueError(f"test_factors: column {j} must take exactly the values of train_factors column {j} "
                             f"{classifier.classes_.tolist()}; these differ: {differing.tolist()}")
        for split, (x, y) in enumerate(((x_train, train_factors[:, j]), (x_test, test_factors[:, j]))):
            one_hot = (y[:, None] == classifier.classes_).astype(np.int64)
            auc[split, j] = roc_auc_score(one_hot, classifier.predict_proba(x))
    return {"modularity": float(per_code.mean()), "modularity_per_code": per_code, "mutual_info": mutual_info,
            "explicitness_train": float(auc[0].mean()), "explicitness_test": float(auc[1].mean()),
            "explicitness_per_factor_train": auc[0], "explicitness_per_factor_test": auc[1]}

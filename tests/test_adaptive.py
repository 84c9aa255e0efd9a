"""Adaptive importance sampling (n_importance_samples="auto")."""

import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from sklearn_mem.models import VAEDensity  # noqa: E402
from sklearn_mem.models._adaptive import RunningIWAE, adaptive_log_prob  # noqa: E402


def _stats(log_w):
    """log mean exp and the delta-method standard error, in numpy float64."""
    log_w = np.asarray(log_w, dtype=np.float64)
    top = log_w.max(axis=1, keepdims=True)
    w = np.exp(log_w - top)
    S = log_w.shape[1]
    mean = w.mean(axis=1)
    sd = w.std(axis=1, ddof=1)
    return np.log(mean) + top[:, 0], sd / (math.sqrt(S) * mean)


def test_running_sums_equal_the_whole_block():
    gen = torch.Generator().manual_seed(0)
    # blocks whose maxima grow, shrink, and a row at -inf in its first block
    blocks = [
        torch.randn(3, 5, generator=gen, dtype=torch.float64) * 3 - 50,
        torch.randn(3, 7, generator=gen, dtype=torch.float64) * 3 + 40,
        torch.randn(3, 4, generator=gen, dtype=torch.float64) * 3 - 900,
    ]
    blocks[0][2] = -math.inf
    acc = RunningIWAE(3)
    rows = torch.arange(3)
    for block in blocks:
        acc.add(rows, block)
    whole = torch.cat(blocks, dim=1).numpy()
    log_prob, stderr = _stats(whole)
    np.testing.assert_allclose(acc.log_prob().numpy(), log_prob, rtol=1e-13)
    np.testing.assert_allclose(acc.stderr().numpy(), stderr, rtol=1e-10)
    assert acc.count.tolist() == [16, 16, 16]


def test_rows_get_samples_until_they_meet_the_target():
    spread = torch.tensor([0.01, 0.3, 1.0, 3.0], dtype=torch.float64)
    drawn = {i: [] for i in range(4)}
    calls = []

    def log_weights(rows, begin, end):
        calls.append((rows.tolist(), begin, end))
        gen = torch.Generator().manual_seed(begin)
        noise = torch.randn(4, end - begin, generator=gen, dtype=torch.float64)
        out = spread[rows, None] * noise[rows]
        for j, i in enumerate(rows.tolist()):
            drawn[i].append(out[j])
        return out

    log_prob, stderr, count = adaptive_log_prob(log_weights, 4, 0.05, 8, 1024)
    # every row holds the estimate of exactly the samples it was given
    for i in range(4):
        whole = torch.cat(drawn[i])[None, :].numpy()
        ref_lp, ref_se = _stats(whole)
        assert count[i] == whole.shape[1]
        np.testing.assert_allclose(log_prob[i].item(), ref_lp[0], rtol=1e-13)
        np.testing.assert_allclose(stderr[i].item(), ref_se[0], rtol=1e-10)
    # the blocks double and continue where the last one ended
    assert calls[0] == ([0, 1, 2, 3], 0, 8)
    for (_, _, e0), (_, b1, e1) in zip(calls, calls[1:]):
        assert b1 == e0 and e1 == min(2 * e0, 1024)
    # a row stops at the first block that meets the target, or at the cap
    for i in range(4):
        sizes = np.cumsum([len(d) for d in drawn[i]])
        for k, n in enumerate(sizes[:-1]):
            _, se = _stats(torch.cat(drawn[i][: k + 1])[None, :].numpy())
            assert se[0] > 0.05, (i, n)
        assert stderr[i] <= 0.05 or count[i] == 1024
    assert count[0] == 8 and count[3] == 1024 and stderr[3] > 0.05
    assert count[0] < count[1] < count[2]


@pytest.fixture(scope="module")
def binary():
    return (np.random.RandomState(0).uniform(size=(48, 12)) > 0.5).astype(float)


def _vae(**params):
    base = dict(latent_dim=2, hidden_dims=(16,), max_epochs=3, random_state=0)
    return VAEDensity(**{**base, **params})


def test_auto_equals_a_fixed_s_of_each_rows_own_size(binary):
    vae = _vae(n_importance_samples="auto", target_se=0.004).fit(binary)
    report = vae.importance_sampling_report(binary)
    counts = report.n_importance_samples
    assert len(set(counts.tolist())) >= 2, counts  # rows differ in S
    assert ((report.stderr <= 0.004 / math.sqrt(2)) | (counts == 2**15)).all()
    np.testing.assert_array_equal(report.log_likelihood, vae.score_samples(binary))
    for S in sorted(set(counts.tolist())):
        fixed = vae.set_params(n_importance_samples=int(S)).score_samples(binary)
        rows = counts == S
        # the continued Sobol points are those of a fixed S
        np.testing.assert_allclose(
            report.log_likelihood[rows], fixed[rows], rtol=2e-6, atol=2e-6
        )
    vae.set_params(n_importance_samples="auto")


def test_fixed_s_report_gives_the_standard_error_of_its_weights(binary):
    vae = _vae(n_importance_samples=64).fit(binary)
    report = vae.importance_sampling_report(binary[:5])
    assert (report.n_importance_samples == 64).all()
    np.testing.assert_array_equal(report.log_likelihood, vae.score_samples(binary[:5]))
    x = torch.as_tensor(binary[:5], dtype=torch.float32)
    with torch.no_grad():
        log_w = vae._log_weights_chunk(x, 0).numpy()
    log_prob, stderr = _stats(log_w)
    np.testing.assert_allclose(report.stderr, stderr, rtol=1e-5)
    np.testing.assert_allclose(report.log_likelihood, log_prob, rtol=1e-5)


@pytest.mark.parametrize(
    "params",
    [{"qmc": False}, {"likelihood": "logit_gaussian", "n_levels": 2}],
    ids=["iid", "dequantised"],
)
def test_auto_with_iid_and_dequantisation_noise(binary, params):
    vae = _vae(n_importance_samples="auto", target_se=0.01, **params).fit(binary)
    report = vae.importance_sampling_report(binary[:10])
    assert np.isfinite(report.log_likelihood).all()
    assert (
        (report.stderr <= 0.01 / math.sqrt(2)) | (report.n_importance_samples == 2**15)
    ).all()
    # deterministic: the noise depends on the row and the seed only
    np.testing.assert_array_equal(vae.score_samples(binary[:10]), report.log_likelihood)


def test_score_folds_with_auto_scores_each_model_by_its_own_weights(binary):
    nets = [
        _vae(n_importance_samples="auto", target_se=0.02, random_state=s).fit(binary)
        for s in (0, 1)
    ]
    both = nets[0].score_folds(nets, binary[:8])
    for k, net in enumerate(nets):
        np.testing.assert_array_equal(both[k], net.score_samples(binary[:8]))


@pytest.mark.parametrize(
    "params, match",
    [
        ({"n_importance_samples": "many"}, "or 'auto'"),
        ({"n_importance_samples": "auto", "target_se": 0.0}, "target_se=0.0"),
        ({"n_importance_samples": "auto", "target_se": float("nan")}, "positive"),
    ],
)
def test_bad_sampling_parameters_are_refused(binary, params, match):
    vae = _vae(max_epochs=1).fit(binary)
    with pytest.raises(ValueError, match=match):
        vae.set_params(**params).score_samples(binary[:2])

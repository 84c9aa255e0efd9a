"""Fold-batched training (DensityNet.fit_folds) equals independent fits."""

import pickle

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("skorch")

from sklearn.base import clone  # noqa: E402
from sklearn.model_selection import KFold  # noqa: E402
from skorch.callbacks import EpochScoring  # noqa: E402

from sklearn_mem import MemorizationScorer  # noqa: E402
from sklearn_mem.models import DensityNet, FlowDensity, VAEDensity  # noqa: E402
from sklearn_mem.models._batched import (  # noqa: E402
    batching_unavailable_reason,
    fit_folds,
    stack_modules,
)


class DiagGaussian(torch.nn.Module):
    def __init__(self, n_features=2):
        super().__init__()
        self.loc = torch.nn.Parameter(torch.zeros(n_features))
        self.log_scale = torch.nn.Parameter(torch.zeros(n_features))

    def forward(self, x):
        dist = torch.distributions.Normal(self.loc, self.log_scale.exp())
        return dist.log_prob(x).sum(-1)


@pytest.fixture(scope="module")
def binary():
    return (np.random.RandomState(0).uniform(size=(103, 12)) > 0.5).astype(float)


@pytest.fixture(scope="module")
def gauss():
    return np.random.RandomState(1).normal(size=(103, 4))


def kfold_trains(X, k=5):
    return [train for train, _ in KFold(k, shuffle=True, random_state=0).split(X)]


# fold sizes 40, 90 and 53 with batch_size=16: 3, 6 and 4 batches per epoch,
# each with a shorter last batch, so folds sit out steps
UNEVEN = [np.arange(40), np.arange(10, 100), np.arange(50, 103)]


def small_vae(**params):
    defaults = dict(
        latent_dim=2,
        hidden_dims=(16,),
        max_epochs=3,
        batch_size=16,
        n_importance_samples=8,
    )
    return VAEDensity(**{**defaults, **params})


def small_flow(**params):
    defaults = dict(n_layers=2, hidden_dims=(8,), max_epochs=3, batch_size=16)
    return FlowDensity(**{**defaults, **params})


def fit_both(est, X, trains):
    seeds = range(len(trains))
    sequential = [
        clone(est).set_params(random_state=s).fit(X[t]) for s, t in zip(seeds, trains)
    ]
    batched = fit_folds(
        [clone(est).set_params(random_state=s) for s in seeds], X, trains
    )
    return sequential, batched


def assert_same_fit(seq, bat, atol=1e-5):
    for s, b in zip(seq, bat):
        ps, pb = dict(s.module_.named_parameters()), dict(b.module_.named_parameters())
        assert ps.keys() == pb.keys()
        for name in ps:
            np.testing.assert_allclose(
                pb[name].detach().numpy(), ps[name].detach().numpy(), atol=atol
            )
        assert len(b.history) == len(s.history)
        for hs, hb in zip(s.history, b.history):
            assert hb["train_batch_count"] == hs["train_batch_count"]
            assert [x["train_batch_size"] for x in hb["batches"]] == [
                x["train_batch_size"] for x in hs["batches"]
            ]
            np.testing.assert_allclose(hb["train_loss"], hs["train_loss"], rtol=1e-5)
        assert b.n_features_in_ == s.n_features_in_
        # Adam state: same step counts and moments
        state_s = list(s.optimizer_.state.values())
        state_b = [b.optimizer_.state[p] for p in b.module_.parameters()]
        assert len(state_b) == len(state_s)
        for a, c in zip(state_s, state_b):
            assert float(a["step"]) == float(c["step"])
            np.testing.assert_allclose(c["exp_avg"], a["exp_avg"], atol=1e-6)


@pytest.mark.parametrize(
    "make, data, trains",
    [
        (small_vae, "binary", None),
        (small_vae, "binary", UNEVEN),
        (lambda **p: small_flow(**p), "gauss", None),
        (lambda **p: small_flow(**p), "gauss", UNEVEN),
    ],
    ids=["vae-kfold", "vae-uneven", "flow-kfold", "flow-uneven"],
)
def test_batched_equals_sequential(make, data, trains, request):
    X = request.getfixturevalue(data)
    trains = kfold_trains(X) if trains is None else trains
    assert_same_fit(*fit_both(make(), X, trains))


@pytest.mark.parametrize(
    "params",
    [
        dict(likelihood="gaussian", lr=3e-3, optimizer__weight_decay=0.1),
        dict(
            likelihood="logit_gaussian",
            n_levels=2,
            optimizer=torch.optim.AdamW,
            optimizer__amsgrad=True,
            optimizer__betas=(0.8, 0.99),
        ),
        dict(likelihood="gaussian_scalar", batch_size=-1),
        dict(iterator_train__drop_last=True, iterator_train__shuffle=False),
    ],
    ids=["gaussian-wd-lr", "logit-adamw-amsgrad", "full-batch", "drop-last"],
)
def test_batched_equals_sequential_options(params, binary):
    X = binary if params.get("likelihood") != "gaussian" else binary - 0.5
    assert_same_fit(*fit_both(small_vae(**params), X, UNEVEN))


def test_continued_training_and_pickling(binary):
    """The clones are ordinary fitted nets: optimizer state included."""
    seq, bat = fit_both(small_vae(), binary, UNEVEN)
    for s, b in zip(seq, bat):
        s.partial_fit(binary[:50])
        b.partial_fit(binary[:50])
    assert_same_fit(seq, bat)
    restored = pickle.loads(pickle.dumps(bat[1]))
    np.testing.assert_array_equal(
        restored.score_samples(binary), bat[1].score_samples(binary)
    )
    assert restored.sample(3).shape == (3, 12)


def test_checkpoints_equal_sequential(binary):
    est = small_vae(max_epochs=4, checkpoint_epochs=(1, 3))
    seq, bat = fit_both(est, binary, UNEVEN)
    for s, b in zip(seq, bat):
        assert sorted(b.checkpoints_) == [1, 3]
        for epoch in (1, 3):
            for name, value in s.checkpoints_[epoch].items():
                np.testing.assert_allclose(
                    b.checkpoints_[epoch][name], value, atol=1e-5
                )
        es, ls = s.score_samples_checkpoints(binary)
        eb, lb = b.score_samples_checkpoints(binary)
        np.testing.assert_array_equal(es, eb)
        np.testing.assert_allclose(lb, ls, rtol=1e-4)


def _batched_and_per_split(est, X):
    batched = MemorizationScorer(est, cv=5, random_state=0, refit=False).fit(X)
    single = MemorizationScorer(
        est, cv=5, random_state=0, refit=False, fold_batching=False
    ).fit(X)
    assert batched.method_ == "batched" and single.method_ == "refit"
    np.testing.assert_array_equal(batched.seeds_, single.seeds_)
    return batched, single


def test_memorization_scorer_batched_matches_per_split(binary):
    est = small_vae(max_epochs=40, hidden_dims=(32,), n_importance_samples=32)
    batched, single = _batched_and_per_split(est, binary)
    # measured: log-likelihoods 3.1e-8 relative, M 1.6e-7 nats apart (M spans
    # about 1 nat): float32 rounding of the batched matmuls, nothing more
    np.testing.assert_allclose(batched.loglik_, single.loglik_, rtol=2e-7)
    np.testing.assert_allclose(
        batched.memorization_scores_, single.memorization_scores_, rtol=0, atol=1e-6
    )


def test_flow_memorization_batched_matches_per_split(gauss):
    batched, single = _batched_and_per_split(small_flow(max_epochs=30), gauss)
    # measured: log-likelihoods 1.0e-7 relative, M 6.1e-7 nats apart
    np.testing.assert_allclose(batched.loglik_, single.loglik_, rtol=5e-7)
    np.testing.assert_allclose(
        batched.memorization_scores_, single.memorization_scores_, rtol=0, atol=3e-6
    )


# ----------------------------------------------------------------------
# fallbacks: fitted one by one, exactly as fit
# ----------------------------------------------------------------------
def assert_identical_fits(seq, bat):
    for s, b in zip(seq, bat):
        for p, q in zip(s.module_.parameters(), b.module_.parameters()):
            assert torch.equal(p, q)


@pytest.mark.parametrize(
    "est, reason",
    [
        (
            DensityNet(DiagGaussian, module__n_features=4, max_epochs=2),
            "module DiagGaussian",
        ),
        (small_flow(callbacks=[EpochScoring("train_loss", name="x")]), "callbacks"),
        (small_flow(optimizer=torch.optim.SGD), "optimizer SGD"),
        (small_flow(warm_start=True), "warm_start"),
    ],
    ids=["custom-module", "callbacks", "sgd", "warm-start"],
)
def test_fallback_reasons_and_results(est, reason, gauss):
    clones = [clone(est).set_params(random_state=s) for s in range(3)]
    assert reason in batching_unavailable_reason(clones)
    assert_identical_fits(*fit_both(est, gauss, UNEVEN))


def test_fallback_random_state_none_and_differing_params(binary):
    # (the convolutional VAE is batched: tests/test_conv_batched.py)
    assert "integer" in batching_unavailable_reason([small_vae(random_state=None)])
    mixed = [small_vae(random_state=0), small_vae(random_state=1, lr=0.1)]
    assert "differ" in batching_unavailable_reason(mixed)


def test_fit_folds_checks_lengths(binary):
    with pytest.raises(ValueError, match="2 estimators for 3 training parts"):
        fit_folds([small_vae(), small_vae()], binary, UNEVEN)


def test_stacked_module_runs_every_fold(binary):
    vaes = [
        small_vae(random_state=s).fit(binary[t]).module_ for s, t in enumerate(UNEVEN)
    ]
    stacked, entries = stack_modules(vaes)
    x = torch.as_tensor(binary[:5], dtype=torch.float32)
    eps = torch.randn(3, 5, 2, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        out = stacked.elbo(x.expand(3, 5, 12), eps)
        for k, vae in enumerate(vaes):
            torch.testing.assert_close(out[k], vae.elbo(x, eps[k]))


# ----------------------------------------------------------------------
# scoring all folds
# ----------------------------------------------------------------------
@pytest.mark.parametrize("likelihood", ["bernoulli", "logit_gaussian"])
def test_score_folds_identical_to_score_samples(likelihood, binary):
    est = small_vae(
        likelihood=likelihood, n_levels=2, n_importance_samples=20, score_batch_size=64
    )
    nets = fit_folds(
        [clone(est).set_params(random_state=s) for s in range(3)], binary, UNEVEN
    )
    rows = est.score_folds(nets, binary)
    assert rows.shape == (3, len(binary))
    np.testing.assert_array_equal(rows, [net.score_samples(binary) for net in nets])
    # models whose scoring noise differs are scored one by one
    nets[1].set_params(score_seed=5)
    np.testing.assert_array_equal(
        est.score_folds(nets, binary)[1], nets[1].score_samples(binary)
    )


def test_score_folds_generic(gauss):
    nets = fit_folds([small_flow(random_state=s) for s in range(3)], gauss, UNEVEN)
    np.testing.assert_array_equal(
        small_flow().score_folds(nets, gauss), [n.score_samples(gauss) for n in nets]
    )


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_batched_on_cuda(binary):
    est = small_vae(device="cuda")
    seq, bat = fit_both(est, binary, UNEVEN)
    for s, b in zip(seq, bat):
        assert next(b.module_.parameters()).device.type == "cuda"
        np.testing.assert_allclose(
            b.score_samples(binary), s.score_samples(binary), rtol=1e-4
        )


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_memorization_scorer_on_cuda(binary):
    """The whole run on the GPU: batched and per-fold fits agree."""
    est = small_vae(device="cuda", n_importance_samples=64)
    runs = {}
    for batching in (True, False):
        mem = MemorizationScorer(est, cv=3, fold_batching=batching, random_state=0).fit(
            binary
        )
        runs[batching] = mem
    assert runs[True].method_ == "batched"
    assert runs[False].method_ == "refit"
    for mem in runs.values():
        assert np.isfinite(mem.memorization_scores_).all()
    np.testing.assert_allclose(
        runs[True].loglik_, runs[False].loglik_, rtol=1e-4, atol=1e-4
    )


def test_score_folds_identical_across_noise_blocks(binary, monkeypatch):
    """Noise shared over several blocks of chunks (as at S=1000) is exact."""
    from sklearn_mem.models import _vae

    monkeypatch.setattr(_vae, "_SHARED_NOISE_ROWS", 7)
    est = small_vae(n_importance_samples=40, score_batch_size=80)
    nets = fit_folds(
        [clone(est).set_params(random_state=s) for s in range(3)], binary, UNEVEN
    )
    np.testing.assert_array_equal(
        est.score_folds(nets, binary), [net.score_samples(binary) for net in nets]
    )


def test_verbose_shows_epochs_and_scoring_of_a_batched_run(binary, capsys):
    est = small_vae(n_importance_samples=8)
    mem = MemorizationScorer(est, cv=3, verbose=1, random_state=0).fit(binary)
    assert mem.method_ == "batched"
    err = capsys.readouterr().err
    assert "training epochs (all folds)" in err
    assert f"{est.max_epochs}/{est.max_epochs}" in err
    assert "scoring rows (all models)" in err
    MemorizationScorer(est, cv=3, verbose=0, random_state=0).fit(binary)
    assert capsys.readouterr().err == ""


def test_batched_progress_without_tqdm_logs(binary, caplog, monkeypatch):
    import logging
    import sys

    monkeypatch.setitem(sys.modules, "tqdm.auto", None)  # import fails
    est = small_vae(n_importance_samples=8)
    with caplog.at_level(logging.INFO, logger="sklearn_mem"):
        MemorizationScorer(est, cv=3, verbose=1, random_state=0).fit(binary)
    messages = [r.getMessage() for r in caplog.records]
    last = f"training epochs (all folds): {est.max_epochs}/{est.max_epochs} done"
    assert last in messages
    assert any(m.startswith("scoring rows (all models):") for m in messages)


def test_progress_reports_reach_only_the_active_reporter():
    from sklearn_mem._progress import report_progress as report
    from sklearn_mem._progress import reporting

    seen = []
    report("stage", 1, 2)  # no reporter: nothing happens
    with reporting(lambda *a: seen.append(("outer",) + a)):
        report("a", 1, 2)
        with reporting(None):
            report("b", 1, 2)
        with reporting(lambda *a: seen.append(("inner",) + a)):
            report("c", 2, 2)
        report("d", 2, 2)
    report("e", 1, 1)
    assert seen == [("outer", "a", 1, 2), ("inner", "c", 2, 2), ("outer", "d", 2, 2)]

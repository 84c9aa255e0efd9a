"""The scorer-to-model protocol and the fold-stacking declaration.

A user's own torch module opts into fold batching with
``fold_stackable = True``; a module that does not is fitted fold by fold,
and ``fold_batching_unavailable_reason()`` says why. A third-party
estimator that is no torch net can take part through ``fit_folds``,
``score_folds`` and ``fold_batching_unavailable_reason`` alone.
"""

import logging
import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("skorch")

from sklearn.base import BaseEstimator, DensityMixin, clone  # noqa: E402
from sklearn.mixture import GaussianMixture  # noqa: E402

from sklearn_mem import MemorizationScorer  # noqa: E402
from sklearn_mem.models import DensityNet  # noqa: E402
from sklearn_mem.models._batched import (  # noqa: E402
    batching_unavailable_reason,
    fit_folds,
)

_LOG_2PI = math.log(2 * math.pi)


class StackableGaussian(torch.nn.Module):
    """A diagonal Gaussian that declares it can be stacked over folds.

    ``forward`` is elementwise in its parameters and sums over the last
    axis, so a copy whose parameters have shape ``(K, 1, n_features)``
    scores inputs of shape ``(K, B, n_features)``.
    """

    fold_stackable = True

    def __init__(self, n_features=2):
        super().__init__()
        self.loc = torch.nn.Parameter(0.1 * torch.randn(n_features))
        self.log_scale = torch.nn.Parameter(torch.zeros(n_features))

    def forward(self, x):
        z = (x - self.loc) * torch.exp(-self.log_scale)
        return (-0.5 * z.pow(2) - self.log_scale - 0.5 * _LOG_2PI).sum(-1)


class PlainGaussian(StackableGaussian):
    """The same computation, but the declaration is not inherited."""


class MLPMeanGaussian(torch.nn.Module):
    """A Gaussian whose mean of the second half depends on the first half.

    Exercises stacked submodules: an ``nn.Sequential`` of ``nn.Linear`` and
    ``nn.Tanh`` becomes batched matrix products over the folds.
    """

    fold_stackable = True

    def __init__(self, n_features=4, hidden=8):
        super().__init__()
        self.half = n_features // 2
        self.net = torch.nn.Sequential(
            torch.nn.Linear(self.half, hidden),
            torch.nn.Tanh(),
            torch.nn.Linear(hidden, n_features - self.half),
        )
        self.log_scale = torch.nn.Parameter(torch.zeros(n_features))

    def forward(self, x):
        first = x[..., : self.half]
        mean = torch.cat([torch.zeros_like(first), self.net(first)], dim=-1)
        z = (x - mean) * torch.exp(-self.log_scale)
        return (-0.5 * z.pow(2) - self.log_scale - 0.5 * _LOG_2PI).sum(-1)


class NoisyGaussian(StackableGaussian):
    """Trains on inputs jittered by noise from the net's generator.

    The noise protocol: ``draw_noise`` draws a batch's noise in the order
    ``forward`` draws it, into ``out`` when given, and ``forward`` takes it
    back as ``noise=``.
    """

    fold_stackable = True

    def draw_noise(self, batch_shape, generator=None, device=None, out=None):
        shape = (*tuple(batch_shape), self.loc.shape[-1])
        if out is not None and out[0] is not None:
            return (torch.randn(shape, generator=generator, out=out[0]),)
        return (torch.randn(shape, generator=generator, device=device),)

    def forward(self, x, generator=None, noise=None):
        if not self.training:
            return super().forward(x)
        if noise is None:
            noise = self.draw_noise(x.shape[:-1], generator, x.device)
        return super().forward(x + 0.1 * noise[0])


class NoisyWithoutDrawNoise(StackableGaussian):
    """Declares stacking but draws its noise where the trainer cannot."""

    fold_stackable = True

    def forward(self, x, generator=None):
        if self.training:
            x = x + 0.1 * torch.randn(x.shape, generator=generator)
        return super().forward(x)


class WithConvolution(StackableGaussian):
    """Declares stacking, but holds a submodule that does not."""

    fold_stackable = True

    def __init__(self, n_features=2):
        super().__init__(n_features)
        self.unused = torch.nn.Conv1d(1, 1, 1)


@pytest.fixture(scope="module")
def gauss():
    return np.random.RandomState(0).normal(size=(90, 4))


def net(module, **params):
    defaults = dict(
        module__n_features=4, max_epochs=4, batch_size=16, lr=0.05, random_state=0
    )
    return DensityNet(module, **{**defaults, **params})


def fit_both(est, X, trains, caplog, batched):
    seeds = range(len(trains))
    sequential = [
        clone(est).set_params(random_state=s).fit(X[t]) for s, t in zip(seeds, trains)
    ]
    clones = [clone(est).set_params(random_state=s) for s in seeds]
    caplog.clear()
    with caplog.at_level(logging.DEBUG, logger="sklearn_mem"):
        fitted = fit_folds(clones, X, trains)
    one_by_one = [
        r.getMessage() for r in caplog.records if "one by one" in r.getMessage()
    ]
    assert bool(one_by_one) is not batched, one_by_one
    return sequential, fitted


TRAINS = [np.arange(0, 60), np.arange(15, 90), np.arange(40, 90)]


def assert_close_fits(seq, bat, identical=False):
    for s, b in zip(seq, bat):
        for (name, p), q in zip(s.module_.named_parameters(), b.module_.parameters()):
            if identical:
                assert torch.equal(p, q), name
            else:
                np.testing.assert_allclose(
                    q.detach().numpy(), p.detach().numpy(), rtol=1e-5, atol=1e-6
                )
        assert [h["train_batch_count"] for h in b.history] == [
            h["train_batch_count"] for h in s.history
        ]


@pytest.mark.parametrize(
    "module",
    [StackableGaussian, MLPMeanGaussian, NoisyGaussian],
    ids=lambda m: m.__name__,
)
def test_user_module_that_opts_in_is_batched(module, gauss, caplog):
    est = net(module)
    assert est.fold_batching_unavailable_reason() is None
    seq, bat = fit_both(est, gauss, TRAINS, caplog, batched=True)
    assert_close_fits(seq, bat)
    for s, b in zip(seq, bat):
        np.testing.assert_allclose(
            b.score_samples(gauss), s.score_samples(gauss), rtol=1e-6
        )


def test_user_module_batched_in_the_scorer_equals_per_fold_fits(gauss):
    est = net(MLPMeanGaussian, max_epochs=10, checkpoint_epochs=(5, 10))
    batched = MemorizationScorer(est, cv=3, random_state=0, refit=False).fit(gauss)
    single = MemorizationScorer(
        est, cv=3, random_state=0, refit=False, fold_batching=False
    ).fit(gauss)
    assert batched.method_ == "batched"
    assert single.method_ == "refit"
    np.testing.assert_array_equal(batched.seeds_, single.seeds_)
    # float32 rounding of the batched products, nothing more
    np.testing.assert_allclose(batched.loglik_, single.loglik_, rtol=1e-5)
    np.testing.assert_allclose(
        batched.memorization_scores_, single.memorization_scores_, atol=1e-4
    )
    # checkpoints travel through the protocol too (checkpoints_,
    # score_samples_checkpoints): memorization at every kept epoch
    np.testing.assert_array_equal(batched.epochs_, [5, 10])
    np.testing.assert_allclose(
        batched.epoch_memorization_scores_,
        single.epoch_memorization_scores_,
        atol=1e-4,
    )


def test_module_that_does_not_opt_in_is_fitted_per_fold(gauss, caplog):
    est = net(PlainGaussian)
    reason = est.fold_batching_unavailable_reason()
    assert "module PlainGaussian" in reason and "fold_stackable" in reason
    mem = MemorizationScorer(est, cv=3, random_state=0, refit=False).fit(gauss)
    assert mem.method_ == "refit"
    # fit_folds still works: one fit after another, exactly as fit
    fits = fit_both(est, gauss, TRAINS, caplog, batched=False)
    assert_close_fits(*fits, identical=True)


def test_stochastic_module_without_draw_noise_is_not_batched(gauss, caplog):
    est = net(NoisyWithoutDrawNoise)
    reason = est.fold_batching_unavailable_reason()
    assert "draw_noise" in reason
    fits = fit_both(est, gauss, TRAINS, caplog, batched=False)
    assert_close_fits(*fits, identical=True)


def test_undeclared_submodule_falls_back_when_stacking(gauss, caplog):
    est = net(WithConvolution)
    # the parameters allow it; the built module cannot be stacked
    assert est.fold_batching_unavailable_reason() is None
    fits = fit_both(est, gauss, TRAINS, caplog, batched=False)
    assert_close_fits(*fits, identical=True)
    assert "it contains a Conv1d module" in caplog.text


def test_net_settings_the_trainer_does_not_reproduce(gauss):
    class OwnLoss(DensityNet):
        def get_loss(self, y_pred, y_true=None, X=None, training=False):
            return 2 * super().get_loss(y_pred, y_true, X, training)

    reason = OwnLoss(StackableGaussian).fold_batching_unavailable_reason()
    assert reason == "OwnLoss overrides get_loss"
    clones = [net(StackableGaussian, random_state=s) for s in range(2)]
    clones[1].set_params(lr=0.1)
    assert "differ" in batching_unavailable_reason(clones)
    assert "not a DensityNet" in batching_unavailable_reason([GaussianMixture()])


class FoldedGaussianMixture(DensityMixin, BaseEstimator):
    """A third-party estimator that speaks the scorer-to-model protocol.

    No torch, no DensityNet: ``fit_folds`` fits the clones (here one after
    another), ``score_folds`` scores them, and
    ``fold_batching_unavailable_reason`` allows batching.
    """

    def __init__(self, n_components=2, random_state=None):
        self.n_components = n_components
        self.random_state = random_state

    def _model(self):
        return GaussianMixture(self.n_components, random_state=self.random_state)

    def fit(self, X, y=None):
        self.model_ = self._model().fit(X)
        return self

    def score_samples(self, X):
        return self.model_.score_samples(X)

    def fit_folds(self, estimators, X, trains):
        return [est.fit(X[train]) for est, train in zip(estimators, trains)]

    def score_folds(self, estimators, X):
        return np.vstack([est.score_samples(X) for est in estimators])

    def fold_batching_unavailable_reason(self):
        return None


def test_third_party_estimator_speaks_the_protocol(gauss):
    est = FoldedGaussianMixture()
    batched = MemorizationScorer(est, cv=3, random_state=0, refit=False).fit(gauss)
    single = MemorizationScorer(
        est, cv=3, random_state=0, refit=False, fold_batching=False
    ).fit(gauss)
    assert batched.method_ == "batched" and single.method_ == "refit"
    np.testing.assert_array_equal(batched.loglik_, single.loglik_)

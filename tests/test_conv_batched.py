"""The convolutional VAE fold-batched: equal to sequential fits with the same seeds.

Stacked convolutions run one convolution per fold on the CPU and one grouped
convolution on a GPU; both forms are checked here on the CPU (the grouped
one by listing the CPU among the devices that use it).
"""

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("skorch")

from torch import nn  # noqa: E402

from sklearn_mem import MemorizationScorer  # noqa: E402
from sklearn_mem.models import (  # noqa: E402
    DensityNet,
    VAEDensity,
    _batched,  # noqa: E402
)
from sklearn_mem.models._batched import (  # noqa: E402
    NotBatchable,
    batching_unavailable_reason,
    stack_modules,
)

X = (np.random.RandomState(0).uniform(size=(103, 16)) > 0.5).astype(float)
# fold sizes 40, 90 and 53 with batch_size=16: folds sit out steps
UNEVEN = [np.arange(40), np.arange(10, 100), np.arange(50, 103)]


@pytest.fixture(params=["per-fold", "grouped"])
def conv_form(request, monkeypatch):
    """Stacked convolutions as on the CPU (per fold) or as on a GPU (grouped)."""
    if request.param == "grouped":
        monkeypatch.setattr(_batched, "_GROUPED_CONV_DEVICES", ("cuda", "cpu"))
    return request.param


def conv_vae(**params):
    defaults = dict(
        architecture="conv",
        input_shape=(1, 4, 4),
        conv_channels=(4, 8),
        latent_dim=2,
        max_epochs=3,
        batch_size=16,
        n_importance_samples=8,
    )
    return VAEDensity(**{**defaults, **params})


def fit_both(est, trains=UNEVEN):
    """Sequential fits and fold-batched fits with the same seeds."""
    from test_batched import fit_both as fit_both_on

    return fit_both_on(est, X, trains)


@pytest.mark.parametrize(
    "params",
    [dict(), dict(likelihood="logit_gaussian", n_levels=2, optimizer__amsgrad=True)],
    ids=["bernoulli", "logit-gaussian-amsgrad"],
)
def test_conv_batched_equals_sequential(params, conv_form):
    est = conv_vae(**params)
    assert batching_unavailable_reason([est.set_params(random_state=0)]) is None
    seq, bat = fit_both(est)
    for s, b in zip(seq, bat):
        assert type(b.module_.encoder) is type(s.module_.encoder)
        # measured: weights 6e-8, Adam moments 2.4e-7, training losses and
        # log-likelihoods 3.5e-8 relative apart (float32 rounding of the
        # batched products; the per-fold convolutions are the same kernels)
        params_b = dict(b.module_.named_parameters())
        for name, p in s.module_.named_parameters():
            np.testing.assert_allclose(
                params_b[name].detach().numpy(), p.detach().numpy(), atol=1e-6
            )
            state_s, state_b = s.optimizer_.state[p], b.optimizer_.state[params_b[name]]
            assert float(state_s["step"]) == float(state_b["step"])
            np.testing.assert_allclose(
                state_b["exp_avg"], state_s["exp_avg"], rtol=0, atol=2e-6
            )
        assert len(b.history) == len(s.history)
        for hs, hb in zip(s.history, b.history):
            assert hb["train_batch_count"] == hs["train_batch_count"]
            np.testing.assert_allclose(hb["train_loss"], hs["train_loss"], rtol=2e-7)
        np.testing.assert_allclose(b.score_samples(X), s.score_samples(X), rtol=2e-7)


def test_conv_memorization_batched_matches_per_split(conv_form):
    est = conv_vae(max_epochs=20, n_importance_samples=32)
    batched = MemorizationScorer(est, cv=5, random_state=0, refit=False).fit(X)
    single = MemorizationScorer(
        est, cv=5, random_state=0, refit=False, fold_batching=False
    ).fit(X)
    assert batched.method_ == "batched" and single.method_ == "refit"
    # measured: log-likelihoods 1.2e-8 (per fold) and 2.1e-8 (grouped)
    # relative, M 1.2e-7 and 1.4e-7 nats apart (M spans 1.0 nat)
    np.testing.assert_allclose(batched.loglik_, single.loglik_, rtol=1e-7)
    np.testing.assert_allclose(
        batched.memorization_scores_, single.memorization_scores_, rtol=0, atol=1e-6
    )


def test_stacked_conv_vae_runs_every_fold(conv_form):
    vaes = [conv_vae(random_state=s).fit(X[t]).module_ for s, t in enumerate(UNEVEN)]
    stacked, _ = stack_modules(vaes)
    x = torch.as_tensor(X[:5], dtype=torch.float32)
    eps = torch.randn(3, 5, 2, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        out = stacked.elbo(x.expand(3, 5, 16), eps)
        for k, vae in enumerate(vaes):
            torch.testing.assert_close(out[k], vae.elbo(x, eps[k]))


@pytest.mark.parametrize(
    "make",
    [
        lambda: nn.Conv2d(4, 6, 3, stride=2, padding=1, dilation=1, groups=2),
        lambda: nn.Conv2d(4, 6, (3, 2), padding=(2, 0), dilation=2, bias=False),
        lambda: nn.ConvTranspose2d(4, 6, 4, stride=2, padding=1, output_padding=1),
        lambda: nn.ConvTranspose2d(4, 2, 3, groups=2, bias=False),
    ],
    ids=["conv-groups", "conv-dilated-nobias", "transposed", "transposed-groups"],
)
def test_stacked_convolution_layer(make, conv_form):
    torch.manual_seed(0)
    folds = [make() for _ in range(3)]
    stacked, entries = stack_modules([nn.Sequential(f, nn.ReLU()) for f in folds])
    x = torch.randn(3, 5, 4, 7, 6)
    with torch.no_grad():
        expected = torch.stack([f(x[k]).relu() for k, f in enumerate(folds)])
        torch.testing.assert_close(stacked(x), expected)  # (K, B, C, H, W)
        merged = stacked(x.reshape(15, 4, 7, 6))  # folds merged, fold-major
        torch.testing.assert_close(merged, expected.reshape(15, *expected.shape[2:]))
        # the stacked convolution alone (outside a Sequential's run), ReLU fused
        (run,) = stacked.children()
        (conv, _) = run.layers
        torch.testing.assert_close(conv(x), expected)
    # each fold's part of the stacked parameters is that fold's parameter
    for stacked_param, params, view in entries:
        for k, p in enumerate(params):
            assert torch.equal(view(stacked_param.detach(), k), p.detach())


class _Reflect(nn.Module):
    fold_stackable = True

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 1, 3, padding=1, padding_mode="reflect")

    def forward(self, x):
        lead = x.shape[:-1]
        out = self.conv(x.reshape(-1, 1, 4, 4)).reshape(*lead, -1)
        return -(out - x).pow(2).sum(-1)


def test_unsupported_convolution_falls_back():
    with pytest.raises(NotBatchable, match="pads other than with zeros"):
        stack_modules([_Reflect(), _Reflect()])
    est = DensityNet(_Reflect, max_epochs=2, batch_size=16)
    seq, bat = fit_both(est)
    for s, b in zip(seq, bat):
        for p, q in zip(s.module_.parameters(), b.module_.parameters()):
            assert torch.equal(p, q)  # fitted one by one, exactly as fit


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_conv_batched_on_cuda():
    """On a GPU the stacked convolutions are grouped; same fits as sequential."""
    seq, bat = fit_both(conv_vae(device="cuda"))
    for s, b in zip(seq, bat):
        assert next(b.module_.parameters()).device.type == "cuda"
        np.testing.assert_allclose(b.score_samples(X), s.score_samples(X), rtol=1e-4)

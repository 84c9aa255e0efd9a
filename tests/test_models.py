"""Tests for sklearn_mem.models: DensityNet, VAEDensity, FlowDensity."""

import pickle
import subprocess
import sys
import warnings

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("skorch")

from sklearn.base import clone  # noqa: E402
from sklearn.exceptions import NotFittedError  # noqa: E402
from sklearn.model_selection import GridSearchCV, KFold  # noqa: E402
from sklearn.pipeline import make_pipeline  # noqa: E402
from sklearn.preprocessing import MinMaxScaler, StandardScaler  # noqa: E402
from sklearn.utils import get_tags  # noqa: E402

from sklearn_mem import MemorizationScorer  # noqa: E402
from sklearn_mem.models import (  # noqa: E402
    DensityNet,
    FlowDensity,
    RealNVP,
    VAEDensity,
    VAEModule,
)


class DiagGaussian(torch.nn.Module):
    """A user module: forward returns per-sample log-likelihoods."""

    def __init__(self, n_features=2):
        super().__init__()
        self.loc = torch.nn.Parameter(torch.zeros(n_features))
        self.log_scale = torch.nn.Parameter(torch.zeros(n_features))

    def dist(self):
        return torch.distributions.Normal(self.loc, self.log_scale.exp())

    def forward(self, x):
        return self.dist().log_prob(x).sum(-1)

    def sample(self, n, generator=None):
        eps = torch.randn((n, len(self.loc)), generator=generator)
        return self.loc + self.log_scale.exp() * eps


class LossGaussian(DiagGaussian):
    """A user module whose forward returns the loss; log_prob scores."""

    def forward(self, x):
        return -self.dist().log_prob(x).sum(-1).mean()

    def log_prob(self, x):
        return self.dist().log_prob(x).sum(-1)


class BadShape(DiagGaussian):
    def forward(self, x):
        return self.dist().log_prob(x)  # forgot to sum over features


def small_vae(**params):
    defaults = dict(
        latent_dim=2,
        hidden_dims=(16,),
        max_epochs=2,
        n_importance_samples=8,
        random_state=0,
    )
    defaults.update(params)
    return VAEDensity(**defaults)


def small_flow(**params):
    defaults = dict(n_layers=2, hidden_dims=(8,), max_epochs=2, random_state=0)
    defaults.update(params)
    return FlowDensity(**defaults)


@pytest.fixture(scope="module")
def gauss():
    return np.random.RandomState(0).normal(size=(60, 3))


@pytest.fixture(scope="module")
def binary():
    return (np.random.RandomState(1).uniform(size=(60, 12)) > 0.5).astype(float)


@pytest.fixture(scope="module")
def digits_small(digits):
    return digits[:200]


# ----------------------------------------------------------------------
# DensityNet basics
# ----------------------------------------------------------------------
def test_package_root_does_not_import_torch():
    code = "import sys, sklearn_mem; sys.exit('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0


def test_density_net_defaults_and_api(gauss):
    net = DensityNet(
        DiagGaussian, module__n_features=3, max_epochs=20, lr=0.05, random_state=0
    )
    params = net.get_params()
    assert params["train_split"] is None
    assert params["iterator_train__shuffle"] is True
    assert params["iterator_train__num_workers"] == 0
    assert params["random_state"] == 0 and params["score_seed"] == 0
    assert get_tags(net).estimator_type == "density_estimator"

    net.fit(gauss)
    scores = net.score_samples(gauss)
    assert scores.dtype == np.float64 and scores.shape == (60,)
    assert net.score(gauss) == pytest.approx(scores.mean())
    assert net.n_features_in_ == 3
    assert len(net.history) == 20
    assert "valid_loss" not in net.history[-1]  # no silent validation split
    # it learned: the likelihood of the data went up from the N(0, I) start
    assert net.history[-1, "train_loss"] < net.history[0, "train_loss"]
    assert net.sample(5, random_state=0).shape == (5, 3)


def test_module_returning_loss_uses_log_prob(gauss):
    net = DensityNet(
        LossGaussian, module__n_features=3, max_epochs=3, random_state=0
    ).fit(gauss)
    expected = net.module_.log_prob(torch.as_tensor(gauss, dtype=torch.float32))
    np.testing.assert_allclose(
        net.score_samples(gauss), expected.detach().numpy(), rtol=1e-6
    )


def test_module_output_shape_error(gauss):
    with pytest.raises(ValueError, match=r"shape \(128, 3\).*per-sample"):
        DensityNet(BadShape, module__n_features=3, batch_size=128).fit(
            np.tile(gauss, (3, 1))
        )


def test_not_fitted_and_feature_mismatch(gauss):
    net = small_flow()
    with pytest.raises(NotFittedError, match="not fitted"):
        net.score_samples(gauss)
    net.fit(gauss)
    with pytest.raises(ValueError, match="X has 2 features.*fitted with 3"):
        net.score_samples(gauss[:, :2])


def test_partial_fit_continues(gauss):
    net = small_flow(max_epochs=1).fit(gauss)
    net.partial_fit(gauss)
    assert len(net.history) == 2


def test_global_rng_restored(gauss):
    torch.manual_seed(123)
    state = torch.get_rng_state()
    net = small_vae(likelihood="gaussian").fit(gauss)
    net.score_samples(gauss)
    net.sample(3)
    assert torch.equal(torch.get_rng_state(), state)


def test_iterator_fallback_to_dataloader(gauss):
    # an option the tensor fast path does not know -> skorch's DataLoader path
    fast = small_flow().fit(gauss)
    slow = small_flow(iterator_train__persistent_workers=False).fit(gauss)
    assert np.isfinite(slow.score_samples(gauss)).all()
    again = small_flow(iterator_train__persistent_workers=False).fit(gauss)
    np.testing.assert_array_equal(slow.score_samples(gauss), again.score_samples(gauss))
    assert fast.score_samples(gauss).shape == (60,)


# ----------------------------------------------------------------------
# Determinism, cloning, pickling
# ----------------------------------------------------------------------
@pytest.mark.parametrize("make", [small_vae, small_flow])
def test_deterministic_for_fixed_random_state(make, binary):
    a = make().fit(binary)
    b = make().fit(binary)
    np.testing.assert_array_equal(a.score_samples(binary), b.score_samples(binary))
    np.testing.assert_array_equal(a.sample(4), b.sample(4))
    c = make(random_state=1).fit(binary)
    assert not np.array_equal(a.score_samples(binary), c.score_samples(binary))


def test_random_state_instance_and_none_run(binary):
    small_flow(random_state=np.random.RandomState(0)).fit(binary)
    small_flow(random_state=None).fit(binary)
    with pytest.raises(ValueError, match="random_state=-1 is negative"):
        small_flow(random_state=-1).fit(binary)


@pytest.mark.parametrize("make", [small_vae, small_flow])
def test_clone_and_params(make, binary):
    net = make(optimizer__weight_decay=1e-4)
    cloned = clone(net)
    assert cloned.get_params()["optimizer__weight_decay"] == 1e-4
    assert type(cloned) is type(net)
    cloned.set_params(max_epochs=1, random_state=3)
    assert cloned.max_epochs == 1 and cloned.random_state == 3
    fitted = clone(net).fit(binary)
    assert clone(fitted).initialized_ is False


@pytest.mark.parametrize("make", [small_vae, small_flow])
def test_pickle_round_trip(make, binary):
    net = make().fit(binary)
    loaded = pickle.loads(pickle.dumps(net))
    np.testing.assert_array_equal(
        loaded.score_samples(binary), net.score_samples(binary)
    )
    np.testing.assert_array_equal(loaded.sample(3), net.sample(3))
    loaded.partial_fit(binary)  # still trainable


def test_pickle_from_gpu_loads_on_cpu(binary):
    from skorch.exceptions import DeviceWarning

    net = small_vae().fit(binary)
    expected = net.score_samples(binary)
    net.device = "cuda"  # as if trained on a GPU; tensors stay CPU here
    data = pickle.dumps(net)
    if torch.cuda.is_available():
        pytest.skip("a GPU is available; the CPU fallback is not exercised")
    with pytest.warns(DeviceWarning):
        loaded = pickle.loads(data)
    assert str(loaded.device) == "cpu"
    np.testing.assert_array_equal(loaded.score_samples(binary), expected)


# ----------------------------------------------------------------------
# VAE: likelihoods, architectures, IWAE
# ----------------------------------------------------------------------
@pytest.mark.parametrize(
    "likelihood, data",
    [
        ("bernoulli", "binary"),
        ("gaussian", "gauss"),
        ("gaussian_scalar", "gauss"),
    ],
)
def test_vae_likelihoods(likelihood, data, request):
    X = request.getfixturevalue(data)
    vae = small_vae(likelihood=likelihood).fit(X)
    scores = vae.score_samples(X)
    assert np.isfinite(scores).all()
    draws = vae.sample(7, random_state=0)
    assert draws.shape == (7, X.shape[1])
    if likelihood == "bernoulli":
        assert set(np.unique(draws)) <= {0.0, 1.0}


def test_vae_scalar_variance_has_one_parameter(gauss):
    vae = small_vae(likelihood="gaussian_scalar").fit(gauss)
    assert vae.module_.likelihood.noise.raw_std.shape == (1,)
    vae = small_vae(likelihood="gaussian").fit(gauss)
    assert vae.module_.likelihood.noise.raw_std.shape == (3,)


def test_vae_logit_gaussian_discrete_space(digits_small):
    pixels = np.round(digits_small * 16)  # integer grey levels 0..16
    vae = small_vae(likelihood="logit_gaussian", n_levels=17).fit(pixels)
    scores = vae.score_samples(pixels)
    # log P of discrete pixels: a probability, so at most 0 nats
    assert np.isfinite(scores).all() and (scores < 0).all()
    draws = vae.sample(5, random_state=0)
    assert np.array_equal(draws, np.round(draws))
    assert draws.min() >= 0 and draws.max() <= 16


def test_logit_gaussian_jacobian_matches_autograd():
    from sklearn_mem.models._likelihoods import LogitGaussianLikelihood

    lik = LogitGaussianLikelihood(3, n_levels=256, alpha=0.05).double()
    v = torch.tensor([[0.3, 100.7, 255.2]], dtype=torch.float64)
    s, log_jac = lik.transform(v, torch.zeros_like(v))
    jac = torch.autograd.functional.jacobian(
        lambda t: lik.transform(t, torch.zeros_like(t))[0][0], v
    )[:, 0, :]
    assert log_jac.item() == pytest.approx(torch.logdet(jac).item(), rel=1e-10)


def test_logit_gaussian_recovers_discrete_probability():
    """A known density of s gives P(x) = integral over the pixel's cell."""
    from sklearn_mem.models._likelihoods import LogitGaussianLikelihood

    lik = LogitGaussianLikelihood(1, n_levels=4, alpha=0.05).double()
    x = torch.tensor([[2.0]], dtype=torch.float64)
    u = torch.linspace(0, 1, 20001, dtype=torch.float64)[1:-1, None]
    s, log_jac = lik.transform(x + 0 * u, u)
    mean = torch.zeros_like(s)
    log_pv = lik.log_prob(s, mean) + log_jac
    p_numeric = log_pv.exp().mean()  # integral over the unit cell
    # exact: standard-normal-ish CDF difference in s space at the cell edges
    std = lik.noise.std().item()
    normal = torch.distributions.Normal(0.0, std)
    edges = lik.transform(
        torch.tensor([[2.0], [3.0]], dtype=torch.float64),
        torch.zeros(2, 1, dtype=torch.float64),
    )[0]
    p_exact = normal.cdf(edges[1, 0]) - normal.cdf(edges[0, 0])
    assert p_numeric.item() == pytest.approx(p_exact.item(), rel=1e-5)


def test_vae_conv_digits_flat_and_image_input(digits_small):
    vae = small_vae(
        architecture="conv", input_shape=(1, 8, 8), conv_channels=(4, 8)
    ).fit(digits_small)
    flat = vae.score_samples(digits_small[:10])
    image = vae.score_samples(digits_small[:10].reshape(10, 1, 8, 8))
    np.testing.assert_array_equal(flat, image)
    assert vae.sample(2).shape == (2, 64)


def test_vae_conv_color_images():
    X = np.random.RandomState(0).uniform(size=(6, 3, 32, 32))
    vae = small_vae(
        architecture="conv",
        input_shape=(3, 32, 32),
        conv_channels=(4, 8),
        max_epochs=1,
        n_importance_samples=2,
    )
    vae.fit(X)
    assert vae.score_samples(X).shape == (6,)
    assert vae.module_.decode(torch.zeros(1, 2)).shape == (1, 3 * 32 * 32)


def test_conv_decoder_odd_image_size():
    vae = VAEModule(
        n_features=5 * 7,
        latent_dim=2,
        architecture="conv",
        input_shape=(1, 5, 7),
        conv_channels=(2, 3),
    )
    assert vae.decode(torch.zeros(4, 2)).shape == (4, 35)


@pytest.fixture(scope="module")
def trained_vae(digits):
    X = digits[:300]
    vae = VAEDensity(
        latent_dim=4,
        hidden_dims=(64,),
        max_epochs=15,
        n_importance_samples=64,
        random_state=0,
    ).fit(X)
    return vae, X


def test_iwae_above_elbo_row_by_row(trained_vae):
    vae, X = trained_vae
    iwae, elbo = vae.score_samples(X), vae.elbo(X)
    assert (iwae >= elbo - 1e-9).all()
    assert (iwae - elbo).mean() > 0.01


def test_iwae_rises_with_number_of_samples(trained_vae):
    vae, X = trained_vae
    vae = pickle.loads(pickle.dumps(vae))
    means = []
    for S in (1, 10, 100, 1000):
        vae.set_params(n_importance_samples=S)
        means.append(vae.score_samples(X).mean())
    assert np.all(np.diff(means) > 0), means
    # S=1 is the single-sample ELBO estimate
    vae.set_params(n_importance_samples=1)
    np.testing.assert_allclose(means[0], vae.elbo(X).mean())


def test_scoring_noise_is_common_across_models(trained_vae):
    """Noise depends on (score_seed, row), never on the model or its seed."""
    vae, X = trained_vae
    twin = pickle.loads(pickle.dumps(vae)).set_params(random_state=12345)
    np.testing.assert_array_equal(twin.score_samples(X), vae.score_samples(X))
    # different chunking (memory budget), same noise per row
    twin.set_params(score_batch_size=100)
    np.testing.assert_allclose(twin.score_samples(X), vae.score_samples(X), rtol=1e-6)
    # a row gets the noise of its position, whatever the model
    other = small_vae(latent_dim=4, hidden_dims=(64,), random_state=7).fit(X)
    eps_a, _ = vae._crn_noise(5, 3, 16)
    eps_b, _ = other._crn_noise(5, 3, 16)
    assert torch.equal(eps_a, eps_b)
    twin.set_params(score_seed=1, score_batch_size=4096)
    assert not np.array_equal(twin.score_samples(X), vae.score_samples(X))


@pytest.mark.parametrize("likelihood", ["bernoulli", "logit_gaussian"])
def test_scoring_workspace_gives_the_same_log_weights(likelihood, digits_small):
    """Reused activation buffers change nothing, at any chunk size."""
    from sklearn_mem.models._vae import _Workspace

    X = digits_small if likelihood == "bernoulli" else np.round(digits_small * 16)
    if likelihood == "bernoulli":
        X = X / 16.0
    vae = small_vae(likelihood=likelihood, hidden_dims=(16, 8)).fit(X)
    module = vae.module_.eval()
    x = torch.as_tensor(X[:6], dtype=torch.float32)
    workspace = _Workspace()
    with torch.no_grad():
        # a large call grows the buffers, smaller ones reuse their heads
        for rows, S in ((6, 40), (2, 7), (5, 40), (1, 1)):
            eps, u = vae._crn_noise(0, rows, S)
            plain = module.log_weights(x[:rows], eps, u)
            reused = module.log_weights(x[:rows], eps, u, workspace=workspace)
            torch.testing.assert_close(reused, plain, rtol=0, atol=0)
    assert workspace._buffers  # the decoder did write into the buffers
    # under autograd the workspace is ignored (activations are kept)
    eps, u = vae._crn_noise(0, 3, 4)
    log_w = module.log_weights(x[:3], eps, u, workspace=_Workspace())
    assert log_w.requires_grad


def test_scoring_workspace_keeps_a_subclass_decode():
    from sklearn_mem.models._vae import _Workspace

    class Doubled(VAEModule):
        def decode(self, z):
            return 2 * self.decoder(z)

    torch.manual_seed(0)
    module = Doubled(n_features=6, latent_dim=2, hidden_dims=(5,))
    plain = VAEModule(n_features=6, latent_dim=2, hidden_dims=(5,))
    plain.load_state_dict(module.state_dict())
    x, eps = torch.rand(3, 6), torch.randn(3, 4, 2)
    with torch.no_grad():
        own = module.log_weights(x, eps, workspace=_Workspace())
        torch.testing.assert_close(own, module.log_weights(x, eps), rtol=0, atol=0)
        assert not torch.equal(own, plain.log_weights(x, eps, workspace=_Workspace()))


def _iwae_by_hand(vae, X, S, rounded, likelihood="bernoulli"):
    """IWAE log p(x) of an MLP VAE in float64, from its parameters.

    ``rounded``: weights, biases, inputs and every layer's output rounded to
    bfloat16, as ``score_precision="bfloat16"`` specifies; else exact.
    ``likelihood``: "bernoulli" (the decoder gives logits) or "gaussian" /
    "gaussian_scalar" (the decoder gives means; the standard deviation is
    ``min_std + softplus(raw_std)``, per feature or one for all).
    """
    module = vae.module_

    def r(t):
        t = t.detach().double()
        return t.to(torch.bfloat16).double() if rounded else t

    def mlp(layers, h):
        h = r(h)
        for layer in layers:
            if isinstance(layer, torch.nn.Linear):
                h = r(h @ r(layer.weight).T + r(layer.bias))
            else:
                h = torch.relu(h)
        return h

    x = torch.as_tensor(X, dtype=torch.float64)
    eps = vae._crn_noise(0, len(X), S)[0].double()
    L = module.latent_dim
    h = mlp(module.encoder, x)
    mu, logvar = h[:, None, :L], h[:, None, L:]
    z = (mu + torch.exp(0.5 * logvar) * eps).float()  # float32, as scored
    log_2pi = np.log(2 * np.pi)
    log_q = (-0.5 * eps**2 - 0.5 * logvar - 0.5 * log_2pi).sum(-1)
    log_pz = (-0.5 * z.double() ** 2 - 0.5 * log_2pi).sum(-1)
    out = mlp(module.decoder, z)
    if likelihood == "bernoulli":
        log_px = (x[:, None] * out - torch.nn.functional.softplus(out)).sum(-1)
    else:
        noise = module.likelihood.noise
        raw = noise.raw_std.detach().double()
        std = noise.min_std + torch.log1p(torch.exp(raw))  # broadcasts if scalar
        log_px = (
            -0.5 * ((x[:, None] - out) / std) ** 2 - torch.log(std) - 0.5 * log_2pi
        ).sum(-1)
    log_w = log_px + log_pz - log_q
    return (torch.logsumexp(log_w, 1) - np.log(S)).numpy()


@pytest.mark.parametrize("likelihood", ["gaussian", "gaussian_scalar"])
def test_gaussian_vae_iwae_matches_float64_reference(likelihood, gauss):
    vae = small_vae(likelihood=likelihood, max_epochs=20, n_importance_samples=32).fit(
        gauss
    )
    noise = vae.module_.likelihood.noise
    assert noise.raw_std.shape == ((3,) if likelihood == "gaussian" else (1,))
    # the variance was learned: away from its initial std of 1
    assert (noise.std().detach() - 1.0).abs().min() > 1e-3
    scores = vae.score_samples(gauss)
    expected = _iwae_by_hand(vae, gauss, 32, False, likelihood=likelihood)
    np.testing.assert_allclose(scores, expected, rtol=0, atol=5e-6)  # measured 8e-7


def test_bfloat16_scoring_matches_rounded_computation(digits):
    """score_precision="bfloat16" is the IWAE of the bfloat16-rounded net."""
    X = digits[:120]
    vae = VAEDensity(
        latent_dim=4,
        hidden_dims=(64, 32),
        max_epochs=10,
        n_importance_samples=64,
        random_state=0,
    ).fit(X)
    full = vae.score_samples(X)
    np.testing.assert_allclose(full, _iwae_by_hand(vae, X, 64, False), atol=1e-5)
    vae.set_params(score_precision="bfloat16")
    lowered = vae.score_samples(X)
    oracle = _iwae_by_hand(vae, X, 64, True)
    # measured on this net: max 1.8e-5, 99th percentile 1.5e-6, median 8e-8
    # nats. The largest rows are rows where bfloat16 rounds one activation
    # the other way (float32 accumulation order); over other training seeds
    # the max ranged 7e-7 .. 1.9e-4 while the median stayed below 1e-7.
    error = np.abs(lowered - oracle)
    np.testing.assert_allclose(lowered, oracle, rtol=0, atol=5e-5)
    assert np.quantile(error, 0.99) < 1e-5
    assert np.median(error) < 5e-7
    # the rounding is really applied: the rows move off the float32 values,
    # by far less than the Monte Carlo noise of the estimate
    gap = np.abs(lowered - full)
    assert np.median(gap) > 20 * np.median(np.abs(lowered - oracle))
    assert gap.max() < 0.05
    # the fold-batched scorer gives the same rows
    twin = pickle.loads(pickle.dumps(vae)).set_params(random_state=3)
    rows = vae.score_folds([vae, twin], X)
    np.testing.assert_array_equal(rows[0], lowered)
    np.testing.assert_array_equal(rows[1], twin.score_samples(X))
    # the default chunk holds twice the points of float32 (same memory)
    assert (
        vae._score_budget()
        == 2 * vae.set_params(score_precision="float32")._score_budget()
    )


@pytest.mark.parametrize("case", ["logit_gaussian", "conv", "subclass"])
def test_bfloat16_scoring_other_networks(case, digits_small):
    """Encoders run per sample, convolutions and a subclass's own decode."""

    class Doubled(VAEModule):
        def decode(self, z):
            return 0.5 * self.decoder(z)

    X = digits_small[:80]
    params = dict(hidden_dims=(16, 8), n_importance_samples=16)
    if case == "logit_gaussian":
        X = np.round(X * 16)
        params.update(likelihood="logit_gaussian", n_levels=17)
    elif case == "conv":
        params.update(architecture="conv", input_shape=(1, 8, 8))
        params.update(conv_channels=(4, 8))
    else:
        params.update(module=Doubled)
    vae = small_vae(**params).fit(X)
    full = vae.score_samples(X)
    lowered = vae.set_params(score_precision="bfloat16").score_samples(X)
    assert np.isfinite(lowered).all()
    assert not np.array_equal(lowered, full)
    np.testing.assert_allclose(
        lowered, full, atol=0.05 if case == "logit_gaussian" else 0.02
    )


def test_error_bad_score_precision(binary):
    with pytest.raises(ValueError, match="score_precision='float16'.*'bfloat16'"):
        small_vae(score_precision="float16").fit(binary)
    vae = small_vae().fit(binary)
    with pytest.raises(ValueError, match="score_batch_size=0.*or None"):
        vae.set_params(score_batch_size=0).score_samples(binary)


def test_qmc_lowers_scoring_noise_and_keeps_normal_draws(trained_vae):
    vae, X = trained_vae
    vae = pickle.loads(pickle.dumps(vae)).set_params(n_importance_samples=64)
    spread = {}
    for qmc in (False, True):
        runs = [
            vae.set_params(qmc=qmc, score_seed=seed).score_samples(X)
            for seed in range(5)
        ]
        spread[qmc] = np.median(np.std(runs, axis=0))
    assert spread[True] < 0.8 * spread[False], spread
    eps, _ = vae.set_params(qmc=True)._crn_noise(0, 200, 64)
    eps = eps.reshape(-1).double()
    assert abs(eps.mean().item()) < 0.02 and abs(eps.var().item() - 1) < 0.03


def test_vae_latent_size_and_module_override(binary):
    vae = small_vae(latent_dim=3, module__min_std=0.1).fit(binary)
    assert vae.module_.latent_dim == 3
    vae.set_params(latent_dim=5).fit(binary)
    assert vae.module_.latent_dim == 5
    vae = small_vae(likelihood="gaussian", module__min_std=0.5).fit(binary)
    assert vae.module_.likelihood.noise.min_std == 0.5


# ----------------------------------------------------------------------
# Flow: exact log-likelihood
# ----------------------------------------------------------------------
def _perturbed_flow(n_features, seed=0):
    torch.manual_seed(seed)
    flow = RealNVP(n_features, n_layers=4, hidden_dims=(16,)).double()
    with torch.no_grad():
        for p in flow.parameters():
            p.add_(0.3 * torch.randn_like(p))
    return flow


def test_flow_matches_brute_force_change_of_variables():
    flow = _perturbed_flow(2)
    x = torch.randn(5, 2, dtype=torch.float64)
    expected = []
    for row in x:
        z = flow.transform(row[None])[0][0]
        jac = torch.autograd.functional.jacobian(
            lambda t: flow.transform(t[None])[0][0], row
        )
        base = torch.distributions.Normal(0.0, 1.0).log_prob(z).sum()
        expected.append(base + torch.linalg.slogdet(jac)[1])
    np.testing.assert_allclose(
        flow.log_prob(x).detach().numpy(),
        torch.stack(expected).detach().numpy(),
        rtol=1e-10,
    )
    # and the inverse really inverts
    z, _ = flow.transform(x)
    np.testing.assert_allclose(flow.inverse(z).detach().numpy(), x.numpy(), atol=1e-10)


def test_flow_density_integrates_to_one_in_1d():
    flow = _perturbed_flow(1, seed=3)
    grid = torch.linspace(-30, 30, 200001, dtype=torch.float64)[:, None]
    dens = flow.log_prob(grid).exp()
    total = torch.trapezoid(dens, grid[:, 0])
    assert total.item() == pytest.approx(1.0, abs=1e-4)


def test_flow_density_score_samples_matches_module(gauss):
    net = small_flow().fit(gauss)
    brute = net.module_.double().log_prob(torch.as_tensor(gauss)).detach().numpy()
    net.module_.float()
    np.testing.assert_allclose(net.score_samples(gauss), brute, rtol=1e-4)


# ----------------------------------------------------------------------
# Bad input
# ----------------------------------------------------------------------
def test_error_wrong_image_shape(digits_small):
    vae = small_vae(architecture="conv", input_shape=(1, 8, 8))
    with pytest.raises(ValueError, match=r"input_shape=\(1, 8, 8\).*Reshape X"):
        vae.fit(digits_small[:, :60])
    with pytest.raises(ValueError, match=r"shape \(200, 8, 8\)"):
        vae.fit(digits_small.reshape(-1, 8, 8))


def test_error_conv_without_input_shape(digits_small):
    with pytest.raises(ValueError, match=r"architecture='conv' needs input_shape"):
        small_vae(architecture="conv").fit(digits_small)


def test_error_nan_in_X(binary):
    X = binary.copy()
    X[3, 2] = np.nan
    for net in (small_vae(), small_flow()):
        with pytest.raises(ValueError, match="X contains NaN.*row: 3.*SimpleImputer"):
            net.fit(X)
    fitted = small_flow().fit(binary)
    with pytest.raises(ValueError, match="X contains NaN"):
        fitted.score_samples(X)


def test_error_bernoulli_outside_unit_interval(gauss):
    with pytest.raises(
        ValueError, match=r"bernoulli.*needs data in \[0, 1\].*MinMaxScaler"
    ):
        small_vae(likelihood="bernoulli").fit(gauss)


def test_error_dequantized_pixels_out_of_range(digits_small):
    with pytest.raises(
        ValueError, match=r"integer pixel values 0\.\.255.*\[0, 1\].*not integers"
    ):
        small_vae(likelihood="logit_gaussian").fit(digits_small)
    with pytest.raises(ValueError, match=r"0\.\.255.*\[0, 300\]"):
        small_vae(likelihood="logit_gaussian").fit(np.array([[0.0, 300.0]] * 5))


def test_error_unknown_likelihood(binary):
    with pytest.raises(ValueError, match="likelihood='poisson' is not known"):
        small_vae(likelihood="poisson").fit(binary)


def test_error_bad_importance_samples(binary):
    vae = small_vae().fit(binary)
    vae.set_params(n_importance_samples=0)
    with pytest.raises(ValueError, match="n_importance_samples=0; expected a positive"):
        vae.score_samples(binary)


# ----------------------------------------------------------------------
# scikit-learn integration
# ----------------------------------------------------------------------
def test_grid_search(digits):
    X = digits[:120]
    grid = GridSearchCV(
        small_vae(max_epochs=1),
        {"max_epochs": [1, 2], "latent_dim": [2, 3]},
        cv=KFold(2),
    ).fit(X)
    # every split's score is the mean IWAE log-likelihood of a net trained
    # with those parameters on the training part (nets are seeded: same net)
    res = grid.cv_results_
    for i, params in enumerate(res["params"]):
        for k, (train, test) in enumerate(KFold(2).split(X)):
            net = small_vae(max_epochs=1).set_params(**params).fit(X[train])
            expected = net.score_samples(X[test]).mean()
            assert res[f"split{k}_test_score"][i] == pytest.approx(expected, rel=1e-6)
    assert grid.best_estimator_.module_.latent_dim == grid.best_params_["latent_dim"]


def test_pipelines(gauss, binary):
    X = gauss * 10 + 3
    pipe = make_pipeline(StandardScaler(), small_flow()).fit(X)
    scaler = StandardScaler().fit(X)
    flow = small_flow().fit(scaler.transform(X))
    # the flow sees the scaled data: same net, same log-likelihoods, and the
    # density of X is that of the scaled data (Pipeline adds no Jacobian)
    np.testing.assert_allclose(
        pipe.score_samples(X), flow.score_samples(scaler.transform(X)), rtol=1e-6
    )
    pipe = make_pipeline(MinMaxScaler(), small_vae()).fit(gauss)
    scores = pipe.score_samples(gauss)
    assert np.isfinite(scores).all()
    assert pipe.score(gauss) == pytest.approx(scores.mean(), rel=1e-6)


# ----------------------------------------------------------------------
# Inside MemorizationScorer
# ----------------------------------------------------------------------
@pytest.mark.parametrize("make", [small_vae, small_flow])
def test_memorization_scorer_process_workers(make, digits):
    X = digits[:80]
    est = make(max_epochs=2)
    if make is small_flow:
        est = make_pipeline(StandardScaler(), est)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # loky worker messages
        par = MemorizationScorer(est, cv=3, n_jobs=2, random_state=0).fit(X)
    seq = MemorizationScorer(est, cv=3, n_jobs=1, random_state=0).fit(X)
    assert par.loglik_.shape == (3, 80) and par.in_mask_.shape == (3, 80)
    assert np.isfinite(par.memorization_scores_).all()
    # same seeds, same scores, whatever n_jobs
    np.testing.assert_array_equal(par.loglik_, seq.loglik_)
    # every fit got its own training seed, and fits differ
    assert not np.array_equal(par.loglik_[0], par.loglik_[1])


def test_memorization_scorer_threading_backend_reproducible(digits):
    """Fits in threads share torch's global RNG; seeding must stay exact."""
    from joblib import parallel_config

    X = digits[:60]
    est = small_vae(max_epochs=2)
    with parallel_config(backend="threading"):
        par = MemorizationScorer(est, cv=4, n_jobs=2, random_state=0).fit(X)
    seq = MemorizationScorer(est, cv=4, n_jobs=1, random_state=0).fit(X)
    np.testing.assert_array_equal(par.loglik_, seq.loglik_)


def test_checkpoints_give_memorization_over_epochs():
    X = (np.random.RandomState(0).rand(60, 16) > 0.5).astype(float)
    vae = VAEDensity(
        max_epochs=6,
        checkpoint_epochs=(2, 4, 6),
        n_importance_samples=8,
        hidden_dims=(16,),
        latent_dim=2,
    )
    mem = MemorizationScorer(vae, cv=3, random_state=0, refit=False).fit(X)
    np.testing.assert_array_equal(mem.epochs_, [2, 4, 6])
    assert mem.epoch_loglik_.shape == (3, 3, 60)
    # the last checkpoint is the final model
    np.testing.assert_array_equal(mem.epoch_loglik_[-1], mem.loglik_)
    np.testing.assert_allclose(
        mem.epoch_memorization_scores_[-1], mem.memorization_scores_
    )
    # an earlier checkpoint is the same net trained for fewer epochs
    train = np.flatnonzero(mem.in_mask_[0])
    from sklearn_mem._folds import set_random_states

    short = set_random_states(clone(vae).set_params(max_epochs=2), mem.seeds_[0])
    np.testing.assert_allclose(
        short.fit(X[train]).score_samples(X), mem.epoch_loglik_[0, 0], rtol=1e-6
    )


def test_bad_checkpoint_epochs():
    X = (np.random.RandomState(0).rand(20, 4) > 0.5).astype(float)
    with pytest.raises(ValueError, match="checkpoint_epochs=.*positive integers"):
        VAEDensity(max_epochs=1, checkpoint_epochs=(0, 1)).fit(X)

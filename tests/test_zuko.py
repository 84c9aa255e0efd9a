"""Tests for ZukoFlowDensity: zuko's normalizing flows as density estimators."""

import os
import pickle
import subprocess
import sys

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("skorch")

from sklearn.base import clone  # noqa: E402
from sklearn.model_selection import GridSearchCV  # noqa: E402

from sklearn_mem import MemorizationScorer  # noqa: E402
from sklearn_mem.models import ZukoFlowDensity  # noqa: E402


@pytest.fixture
def zuko():
    return pytest.importorskip("zuko")


@pytest.fixture
def X2():
    """Two standardised 2-D clusters."""
    rng = np.random.RandomState(0)
    X = np.vstack([rng.randn(40, 2) * 0.5 - 1.0, rng.randn(40, 2) * 0.5 + 1.0])
    return (X - X.mean(0)) / X.std(0)


def small(flow="NSF", **params):
    kwargs = {"transforms": 1, "hidden_features": (16,)}
    params.setdefault(
        "flow_kwargs", None if isinstance(flow, torch.nn.Module) else kwargs
    )
    params.setdefault("max_epochs", 2)
    params.setdefault("batch_size", 32)
    return ZukoFlowDensity(flow, **params)


def state(est):
    return {k: v.clone() for k, v in est.module_.state_dict().items()}


def same_state(a, b):
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


# ----------------------------------------------------------------------
# Seeding
# ----------------------------------------------------------------------
@pytest.mark.parametrize("form", ["name", "class", "object"])
def test_same_seed_is_bit_identical_other_seed_differs(zuko, X2, form):
    flow = {
        "name": "NSF",
        "class": zuko.flows.NSF,
        "object": zuko.flows.NSF(features=2, transforms=1, hidden_features=(16,)),
    }[form]
    kwargs = None if form == "object" else {"transforms": 1, "hidden_features": (16,)}
    est = ZukoFlowDensity(flow, flow_kwargs=kwargs, max_epochs=2, random_state=0)
    a = clone(est).fit(X2)
    b = clone(est).fit(X2)
    c = clone(est).set_params(random_state=1).fit(X2)
    assert same_state(state(a), state(b))
    assert not same_state(state(a), state(c))
    np.testing.assert_array_equal(a.score_samples(X2), b.score_samples(X2))
    assert not np.array_equal(a.score_samples(X2), c.score_samples(X2))
    np.testing.assert_array_equal(a.sample(5), b.sample(5))
    assert not np.array_equal(a.sample(5), c.sample(5))
    # the initialisation itself depends on the seed (not just the batch order)
    a0 = clone(est).set_params(max_epochs=0).fit(X2)
    c0 = clone(est).set_params(max_epochs=0, random_state=1).fit(X2)
    assert not same_state(state(a0), state(c0))


def test_sample_random_state(zuko, X2):
    est = small(random_state=0).fit(X2)
    np.testing.assert_array_equal(
        est.sample(6, random_state=3), est.sample(6, random_state=3)
    )
    assert not np.array_equal(
        est.sample(6, random_state=3), est.sample(6, random_state=4)
    )
    draws = est.sample(6)
    assert draws.shape == (6, 2) and draws.dtype == np.float64
    assert np.isfinite(draws).all()
    np.testing.assert_array_equal(draws, est.sample(6, random_state=0))


def test_fitting_never_changes_the_users_flow(zuko, X2):
    flow = zuko.flows.NSF(features=2, transforms=1, hidden_features=(16,))
    before = {k: v.clone() for k, v in flow.state_dict().items()}
    est = ZukoFlowDensity(flow, max_epochs=2, random_state=0)
    clone(est).fit(X2)
    est.fit(X2)
    assert est.flow is flow
    assert est.module_.flow is not flow
    assert same_state(before, flow.state_dict())
    # clone deep-copies the flow: the clone's object is a different one
    assert clone(est).flow is not flow


def test_global_rng_untouched(zuko, X2):
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    est = small(random_state=0).fit(X2)
    est.score_samples(X2)
    est.sample(3)
    np.testing.assert_array_equal(torch.rand(3), expected)


# ----------------------------------------------------------------------
# Density
# ----------------------------------------------------------------------
@pytest.mark.parametrize("flow", ["NSF", "MAF"])
def test_density_integrates_to_one(zuko, X2, flow):
    est = ZukoFlowDensity(
        flow,
        flow_kwargs={"transforms": 2, "hidden_features": (32, 32)},
        max_epochs=30,
        lr=1e-2,
        batch_size=32,
        random_state=0,
        iterator_valid__batch_size=-1,
    ).fit(X2)
    assert est.score(X2) > -2.7  # it learnt something (N(0, I): about -2.84)
    grid = np.linspace(-9.0, 9.0, 361)
    xx, yy = np.meshgrid(grid, grid, indexing="ij")
    density = np.exp(est.score_samples(np.c_[xx.ravel(), yy.ravel()]))
    mass = np.trapezoid(np.trapezoid(density.reshape(xx.shape), grid), grid)
    assert abs(mass - 1.0) < 1e-2


def test_score_samples_is_the_flows_log_prob(zuko, X2):
    est = small(random_state=0).fit(X2)
    with torch.no_grad():
        expected = est.module_.flow().log_prob(torch.as_tensor(X2, dtype=torch.float32))
    np.testing.assert_allclose(est.score_samples(X2), expected.double().numpy())
    assert est.score(X2) == pytest.approx(est.score_samples(X2).mean())


def test_features_follow_the_data_for_a_class(zuko):
    X3 = np.random.RandomState(1).randn(30, 3)
    est = small(zuko.flows.MAF, random_state=0).fit(X3)
    assert est.n_features_in_ == 3
    assert est.module_.n_features == 3
    assert est.sample(2).shape == (2, 3)


def test_any_callable_flow_factory(zuko, X2):
    def factory(features, width=8):
        return zuko.flows.RealNVP(features, transforms=2, hidden_features=(width,))

    est = ZukoFlowDensity(factory, flow_kwargs={"width": 4}, max_epochs=1)
    est.set_params(random_state=0).fit(X2)
    assert est.module_.flow.transform.transforms[0].hyper[0].out_features == 4


# ----------------------------------------------------------------------
# scikit-learn and the scorer
# ----------------------------------------------------------------------
def test_pickle_round_trip(zuko, X2):
    est = small(random_state=0).fit(X2)
    loaded = pickle.loads(pickle.dumps(est))
    np.testing.assert_array_equal(loaded.score_samples(X2), est.score_samples(X2))
    np.testing.assert_array_equal(loaded.sample(4), est.sample(4))
    unfitted = pickle.loads(pickle.dumps(small(random_state=0)))
    assert unfitted.get_params()["flow_kwargs"] == small().flow_kwargs


def test_clone_keeps_the_parameters(zuko):
    flow = zuko.flows.NSF(features=2, transforms=1)
    est = ZukoFlowDensity(flow, lr=0.01, max_epochs=3, random_state=2)
    cloned = clone(est)
    assert type(cloned.flow) is type(flow)
    assert cloned.get_params()["lr"] == 0.01
    assert cloned.get_params()["random_state"] == 2
    named = clone(small(random_state=0))
    assert named.flow == "NSF" and named.flow_kwargs == small().flow_kwargs


def test_grid_search(zuko, X2):
    search = GridSearchCV(
        small(random_state=0),
        {"lr": [1e-3, 1e-2], "max_epochs": [1, 2]},
        cv=2,
    ).fit(X2)
    assert set(search.best_params_) == {"lr", "max_epochs"}
    assert np.isfinite(search.best_score_)
    flows = GridSearchCV(
        small(random_state=0),
        {"flow": ["NSF", "MAF"]},
        cv=2,
    ).fit(X2)
    assert flows.best_params_["flow"] in ("NSF", "MAF")


def test_memorization_scorer_refits(zuko, X2):
    est = small(random_state=0)
    reason = est.fold_batching_unavailable_reason()
    assert "zuko" in reason and "NSF" in reason
    mem = MemorizationScorer(est, cv=2, random_state=0).fit(X2)
    assert mem.method_ == "refit"
    assert mem.memorization_scores_.shape == (len(X2),)
    assert np.isfinite(mem.memorization_scores_).all()
    again = MemorizationScorer(est, cv=2, random_state=0).fit(X2)
    np.testing.assert_array_equal(mem.memorization_scores_, again.memorization_scores_)
    fitted = est.fit_folds(
        [clone(est).set_params(random_state=k) for k in range(2)],
        X2,
        [np.arange(40), np.arange(40, 80)],
    )
    alone = clone(est).set_params(random_state=1).fit(X2[40:])
    np.testing.assert_array_equal(fitted[1].score_samples(X2), alone.score_samples(X2))


def test_checkpoints(zuko, X2):
    est = small(random_state=0, max_epochs=3, checkpoint_epochs=(1, 3)).fit(X2)
    epochs, ll = est.score_samples_checkpoints(X2)
    assert list(epochs) == [1, 3]
    np.testing.assert_array_equal(ll[1], est.score_samples(X2))


# ----------------------------------------------------------------------
# Errors and warnings
# ----------------------------------------------------------------------
def test_feature_mismatch_is_explained(zuko, X2):
    est = ZukoFlowDensity(zuko.flows.NSF(features=64), max_epochs=1)
    with pytest.raises(ValueError, match="models 64 features, but X has 2"):
        est.fit(X2)


def test_conditional_flow_is_refused(zuko, X2):
    est = ZukoFlowDensity(zuko.flows.NSF(features=2, context=3), max_epochs=1)
    with pytest.raises(ValueError, match="unconditional flow"):
        est.fit(X2)


@pytest.mark.parametrize(
    "params, error, match",
    [
        ({"flow": "NoSuchFlow"}, ValueError, "not a flow of zuko.flows"),
        ({"flow": 3}, TypeError, "name of a zuko flow"),
        ({"flow_kwargs": {"features": 2}}, ValueError, "taken from the data"),
        ({"module": torch.nn.Linear}, ValueError, "Use DensityNet"),
    ],
)
def test_bad_parameters(zuko, X2, params, error, match):
    with pytest.raises(error, match=match):
        ZukoFlowDensity(max_epochs=1, **params).fit(X2)


def test_flow_kwargs_with_an_object_is_refused(zuko, X2):
    est = ZukoFlowDensity(zuko.flows.NSF(features=2), flow_kwargs={"transforms": 1})
    with pytest.raises(ValueError, match="pass its class"):
        est.fit(X2)


def test_parameters_without_reset_are_reported(zuko, X2):
    flow = zuko.flows.GF(features=2, transforms=1)
    est = ZukoFlowDensity(flow, max_epochs=1, random_state=0)
    with pytest.warns(UserWarning, match="not in a submodule with reset_parameters"):
        est.fit(X2)
    # the class route draws them from random_state, silently
    with_class = ZukoFlowDensity(
        zuko.flows.GF, flow_kwargs={"transforms": 1}, max_epochs=0
    )
    a = clone(with_class).set_params(random_state=0).fit(X2)
    b = clone(with_class).set_params(random_state=1).fit(X2)
    assert not same_state(state(a), state(b))


def test_importable_and_explained_without_zuko():
    code = (
        "import sys; sys.modules['zuko'] = None; sys.modules['zuko.flows'] = None\n"
        "import numpy as np\n"
        "from sklearn_mem.models import ZukoFlowDensity\n"
        "est = ZukoFlowDensity(max_epochs=1)\n"
        "try:\n"
        "    est.fit(np.zeros((4, 2)))\n"
        "except ImportError as exc:\n"
        "    print('IMPORT-ERROR', exc)\n"
    )
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env
    )
    assert out.returncode == 0, out.stderr
    assert "IMPORT-ERROR" in out.stdout and "pip install zuko" in out.stdout

"""Ray as a joblib backend: the same scores, bit for bit, as n_jobs=1."""

import numpy as np
import pytest
from sklearn.mixture import GaussianMixture

from sklearn_mem import MemorizationScorer

ray = pytest.importorskip("ray")


@pytest.fixture(scope="module")
def ray_runtime():
    from ray.util.joblib import register_ray

    ray.init(
        num_cpus=2,
        include_dashboard=False,
        log_to_driver=False,
        configure_logging=False,
        _node_ip_address="127.0.0.1",
    )
    register_ray()
    yield
    ray.shutdown()


def _overlapping(n=120):
    rng = np.random.RandomState(0)
    return np.vstack([rng.randn(n // 2, 2), rng.randn(n // 2, 2) + 1.0])


def test_ray_backend_gives_identical_scores(ray_runtime):
    from joblib import parallel_config

    X = _overlapping()
    est = GaussianMixture(3, n_init=1)
    ref = MemorizationScorer(est, cv=5, n_jobs=1, random_state=0).fit(X)
    with parallel_config(backend="ray"):
        got = MemorizationScorer(est, cv=5, n_jobs=2, random_state=0, verbose=1).fit(X)
    np.testing.assert_array_equal(got.loglik_, ref.loglik_)
    np.testing.assert_array_equal(got.memorization_scores_, ref.memorization_scores_)
    np.testing.assert_array_equal(got.full_loglik_, ref.full_loglik_)


def test_ray_backend_fold_batched_study(ray_runtime):
    pytest.importorskip("torch")
    pytest.importorskip("skorch")
    from joblib import parallel_config

    from sklearn_mem.models import FlowDensity

    X = _overlapping(60).astype(np.float32)
    flow = FlowDensity(n_layers=2, hidden_dims=(8,), max_epochs=2, batch_size=32)
    ref = MemorizationScorer(flow, cv=3, n_jobs=1, random_state=0).fit(X)
    assert ref.method_ == "batched"
    with parallel_config(backend="ray"):
        got = MemorizationScorer(flow, cv=3, n_jobs=2, random_state=0).fit(X)
    assert got.method_ == "batched"
    np.testing.assert_array_equal(got.memorization_scores_, ref.memorization_scores_)

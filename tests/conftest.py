import os

# one BLAS/OpenMP thread per process: two cores are easy to oversubscribe
for _var in (
    "OMP_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "MKL_NUM_THREADS",
    "VECLIB_MAXIMUM_THREADS",
    "NUMEXPR_NUM_THREADS",
):
    os.environ.setdefault(_var, "1")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
from sklearn.datasets import load_digits  # noqa: E402


@pytest.fixture(scope="session")
def digits():
    """scikit-learn's digits scaled to [0, 1]."""
    return load_digits().data / 16.0


@pytest.fixture
def blobs():
    rng = np.random.RandomState(0)
    return np.vstack([rng.randn(20, 2), rng.randn(20, 2) + 4.0])


@pytest.fixture
def overlapping():
    """Two overlapping clusters: a GaussianMixture's answer depends on its seed.

    ``seeded_gmm()`` converges to different local optima for different seeds
    here (checked by ``test_seeded_gmm_depends_on_its_seed``), so tests that
    use it catch fits that get the wrong seed, the same seed or none.
    """
    rng = np.random.RandomState(0)
    return np.vstack([rng.randn(20, 2), rng.randn(20, 2) + 1.5])


@pytest.fixture
def seeded_gmm():
    """Factory of a GaussianMixture whose fit depends on its random_state."""
    from sklearn.mixture import GaussianMixture

    def make(**params):
        return GaussianMixture(3, init_params="random_from_data", **params)

    return make


def pytest_sessionfinish(session, exitstatus):
    """Stop the pool of loky workers the session's ``n_jobs=2`` tests started.

    A process forked after the session would inherit the pool's state but not
    its threads, and hang in its first parallel fit: mutmut runs the tests
    once in its own process, then forks one child per mutant.
    """
    import sys

    module = sys.modules.get("joblib.externals.loky.reusable_executor")
    executor = getattr(module, "_executor", None)
    if executor is not None:
        executor.shutdown(wait=True, kill_workers=True)

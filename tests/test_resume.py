"""Fold-batched units: saved training states, resumed runs, one unit per repeat.

A fold-batched run with ``memory`` saves its training state (stacked
weights, Adam state, generators, histories) while it trains; a run killed
mid-training continues from the last saved epoch and ends with exactly the
scores of a run that was never stopped. With RepeatedKFold each repeat is a
unit of its own: cached on its own, and dispatched through joblib.
"""

import logging
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("skorch")

from sklearn.base import clone  # noqa: E402
from sklearn.model_selection import (  # noqa: E402
    KFold,
    RepeatedKFold,
    ShuffleSplit,
)

from sklearn_mem._folds import (  # noqa: E402
    KILL_AT_ENV,
    STATE_DIR,
    TrainingStateStore,
    fold_units,
)
from sklearn_mem.cli import FitStore  # noqa: E402
from sklearn_mem.models import FlowDensity, VAEDensity  # noqa: E402

# what both the killed child process and this process fit: 3 x 2 fits of a
# tiny VAE, a saved state after every epoch
STUDY = textwrap.dedent(
    """
    import numpy as np
    from sklearn.model_selection import KFold, RepeatedKFold
    from sklearn_mem import MemorizationScorer
    from sklearn_mem.models import VAEDensity

    X = (np.random.RandomState(0).uniform(size=(60, 12)) > 0.5).astype(float)
    VAE = VAEDensity(latent_dim=2, hidden_dims=(16,), max_epochs=6,
                     batch_size=16, n_importance_samples=8, save_state_every=1)


    def scorer(memory=None, repeats=1, **params):
        cv = (KFold(3, shuffle=True, random_state=0) if repeats == 1 else
              RepeatedKFold(n_splits=3, n_repeats=repeats, random_state=0))
        return MemorizationScorer(VAE, cv=cv, random_state=0, refit=False,
                                  memory=memory, **params)
    """
)
# the child: trains slowly (so that the parent's kill lands mid-training)
CHILD = STUDY + textwrap.dedent(
    """
    import sys, time
    from sklearn_mem.cli import FitStore
    from sklearn_mem.models import _batched

    if sys.argv[3] == "slow":
        run_epoch = _batched.FoldStack.run_epoch

        def slow_epoch(self):
            time.sleep(1.0)
            return run_epoch(self)

        _batched.FoldStack.run_epoch = slow_epoch
    memory = FitStore(sys.argv[1]) if sys.argv[2] == "fitstore" else sys.argv[1]
    scorer(memory, repeats=int(sys.argv[4])).fit(X)
    """
)


@pytest.fixture(scope="module")
def study():
    namespace = {}
    exec(STUDY, namespace)  # noqa: S102 - the test's own code
    return namespace


ROOT = Path(__file__).resolve().parents[1]


def _child(memory, kind, speed, repeats, env=None):
    path = os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])
    return subprocess.Popen(
        [sys.executable, "-c", CHILD, str(memory), kind, speed, str(repeats)],
        cwd=ROOT,
        env={**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": path, **(env or {})},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )


def _states(location):
    return sorted(Path(location, STATE_DIR).glob("*/state.npz"))


def _resumed_epochs(caplog):
    return [
        int(r.getMessage().split("after epoch ")[1].split()[0])
        for r in caplog.records
        if "resuming the fold-batched training" in r.getMessage()
    ]


def test_killed_run_resumes_bit_identical(study, tmp_path, caplog):
    """A real SIGKILL of a process mid-training, then the same run again."""
    memory = tmp_path / "cache"
    proc = _child(memory, "joblib", "slow", repeats=1)
    try:
        deadline = time.monotonic() + 120
        while not _states(memory):
            assert proc.poll() is None, proc.stdout.read().decode()
            assert time.monotonic() < deadline, "no training state was saved"
            time.sleep(0.02)
        proc.send_signal(signal.SIGKILL)  # kill -9
        proc.wait(30)
    finally:
        proc.kill()
    assert proc.returncode == -signal.SIGKILL
    assert len(_states(memory)) == 1

    with caplog.at_level(logging.INFO, logger="sklearn_mem"):
        resumed = study["scorer"](str(memory)).fit(study["X"])
    (epoch,) = _resumed_epochs(caplog)
    assert 1 <= epoch <= 6
    assert resumed.n_fits_from_cache_ == 0
    uninterrupted = study["scorer"]().fit(study["X"])
    np.testing.assert_array_equal(resumed.loglik_, uninterrupted.loglik_)
    np.testing.assert_array_equal(
        resumed.memorization_scores_, uninterrupted.memorization_scores_
    )
    # the unit is cached, so its saved state is gone
    assert not _states(memory)


def test_run_folder_store_resumes_after_kill_hook(study, tmp_path, caplog):
    """FitStore: the first repeat cached, the second resumed; no pickle."""
    memory = tmp_path / "cache"
    # saves 1-6: the first repeat's epochs; 8: the second repeat's epoch 2
    proc = _child(
        memory, "fitstore", "fast", repeats=2, env={KILL_AT_ENV: "training-state:8"}
    )
    out, _ = proc.communicate(timeout=240)
    assert proc.returncode == -signal.SIGKILL, out.decode()
    (state,) = _states(memory)
    with np.load(state, allow_pickle=False) as archive:  # plain arrays only
        assert {"meta", "sha256"} <= set(archive.files)
    assert not list(Path(memory).rglob("*.pkl"))
    assert len(FitStore(memory).entries()) == 2  # one unit + the saved state

    with caplog.at_level(logging.INFO, logger="sklearn_mem"):
        resumed = study["scorer"](FitStore(memory), repeats=2).fit(study["X"])
    assert _resumed_epochs(caplog) == [2]
    assert resumed.n_fits_from_cache_ == 3
    uninterrupted = study["scorer"](repeats=2).fit(study["X"])
    np.testing.assert_array_equal(resumed.loglik_, uninterrupted.loglik_)
    assert not _states(memory)


# ----------------------------------------------------------------------
# fit_folds with a store: the restored state is the state
# ----------------------------------------------------------------------
BINARY = (np.random.RandomState(0).uniform(size=(103, 12)) > 0.5).astype(float)
UNEVEN = [np.arange(40), np.arange(10, 100), np.arange(50, 103)]


class _Stop(Exception):
    pass


class _StopAfter(TrainingStateStore):
    """Saves like the real store, then stops the training (a kill)."""

    def __init__(self, location, key, n):
        super().__init__(location, key)
        self.n = n

    def save(self, arrays, meta):
        super().save(arrays, meta)
        if self.n_saved == self.n:
            raise _Stop


def _fit(est, store=None, X=BINARY):
    clones = [clone(est).set_params(random_state=s) for s in range(3)]
    return est.fit_folds(clones, X, UNEVEN, checkpoint=store)


def _assert_identical(a_nets, b_nets, X=BINARY):
    for a, b in zip(a_nets, b_nets):
        for p, q in zip(a.module_.parameters(), b.module_.parameters()):
            assert torch.equal(p, q)
        state_a = [a.optimizer_.state[p] for p in a.module_.parameters()]
        state_b = [b.optimizer_.state[p] for p in b.module_.parameters()]
        for sa, sb in zip(state_a, state_b):
            assert sa.keys() == sb.keys()
            for name in sa:
                assert torch.equal(sa[name], sb[name]), name
        # the history too (but for the epochs' durations)
        strip = [
            [{k: v for k, v in row.items() if k != "dur"} for row in net.history]
            for net in (a, b)
        ]
        assert strip[0] == strip[1]
        assert sorted(a.checkpoints_) == sorted(b.checkpoints_)
        for epoch, weights in a.checkpoints_.items():
            for name, value in weights.items():
                assert torch.equal(value, b.checkpoints_[epoch][name])
        np.testing.assert_array_equal(a.score_samples(X), b.score_samples(X))


@pytest.mark.parametrize(
    "est, stop_after",
    [
        (
            VAEDensity(
                latent_dim=2,
                hidden_dims=(16,),
                likelihood="logit_gaussian",
                n_levels=2,
                optimizer__amsgrad=True,
                checkpoint_epochs=(1, 5),
                save_state_every=2,
            ),
            2,
        ),
        (VAEDensity(latent_dim=2, hidden_dims=(16,), save_state_seconds=0), 3),
        (FlowDensity(n_layers=2, hidden_dims=(8,), save_state_every=1), 1),
        (
            VAEDensity(
                architecture="conv",
                input_shape=(1, 3, 4),
                conv_channels=(4,),
                latent_dim=2,
                save_state_every=3,
            ),
            1,
        ),
    ],
    ids=["vae-noise-amsgrad-snapshots", "vae-every-epoch-by-time", "flow", "conv"],
)
def test_resumed_fit_folds_equal_uninterrupted(est, stop_after, tmp_path):
    est = est.set_params(max_epochs=6, batch_size=16)
    if isinstance(est, VAEDensity):
        est.set_params(n_importance_samples=8)
    X = BINARY if isinstance(est, VAEDensity) else BINARY - 0.5
    with pytest.raises(_Stop):
        _fit(est, _StopAfter(tmp_path, "unit", stop_after), X)
    store = TrainingStateStore(tmp_path, "unit")
    every = est.save_state_every or 1
    assert store.load()[1]["epoch"] == every * stop_after
    _assert_identical(_fit(est, X=X), _fit(est, store, X), X)
    # the last save is after the last epoch
    assert store.load()[1]["epoch"] == 6


def test_fully_trained_state_skips_training(tmp_path, monkeypatch):
    est = VAEDensity(latent_dim=2, hidden_dims=(16,), max_epochs=3, batch_size=16)
    store = TrainingStateStore(tmp_path, "unit")
    first = _fit(est, store)
    from sklearn_mem.models import _batched

    def no_training(self):
        raise AssertionError("trained again")

    monkeypatch.setattr(_batched.FoldStack, "run_epoch", no_training)
    _assert_identical(first, _fit(est, store))


def test_unusable_states_are_reported_and_ignored(tmp_path):
    est = VAEDensity(
        latent_dim=2, hidden_dims=(16,), max_epochs=3, batch_size=16, save_state_every=1
    )
    reference = _fit(est)
    with pytest.raises(_Stop):
        _fit(est, _StopAfter(tmp_path, "unit", 1))
    store = TrainingStateStore(tmp_path, "unit")
    # an edited file: its checksum no longer matches
    raw = bytearray(store.path.read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    store.path.write_bytes(bytes(raw))
    with pytest.warns(RuntimeWarning, match="cannot be used"):
        _assert_identical(reference, _fit(est, store))
    # a readable state of other folds (same key): training starts afresh
    arrays, meta = store.load()
    store.save(arrays, {**meta, "n_folds": 4})
    with pytest.warns(RuntimeWarning, match="does not fit them"):
        _assert_identical(reference, _fit(est, store))


class _FullDisk(TrainingStateStore):
    def save(self, arrays, meta):
        raise OSError(28, "No space left on device")


def test_failed_save_warns_and_training_goes_on(tmp_path):
    est = VAEDensity(
        latent_dim=2, hidden_dims=(16,), max_epochs=3, batch_size=16, save_state_every=1
    )
    with pytest.warns(RuntimeWarning, match="could not be saved after epoch 1"):
        nets = _fit(est, _FullDisk(tmp_path, "unit"))
    _assert_identical(_fit(est), nets)


def test_no_saving_when_switched_off(tmp_path):
    est = VAEDensity(
        latent_dim=2,
        hidden_dims=(16,),
        max_epochs=2,
        batch_size=16,
        save_state_every=None,
        save_state_seconds=None,
    )
    store = TrainingStateStore(tmp_path, "unit")
    _fit(est, store)
    assert store.load() is None


@pytest.mark.parametrize(
    "params, match",
    [
        (dict(save_state_every=0), "save_state_every=0"),
        (dict(save_state_every=2.5), "save_state_every=2.5"),
        (dict(save_state_seconds=-1), "save_state_seconds=-1"),
        (dict(save_state_seconds="60"), "save_state_seconds='60'"),
    ],
)
def test_save_schedule_is_validated(params, match):
    est = VAEDensity(latent_dim=2, hidden_dims=(4,), max_epochs=1, **params)
    with pytest.raises(ValueError, match=match):
        est.fit(BINARY)
    with pytest.raises(ValueError, match=match):
        _fit(est)


def test_state_store_round_trip(tmp_path):
    store = TrainingStateStore(tmp_path, "key")
    arrays = {"w": np.arange(6, dtype=np.float32).reshape(2, 3), "s": np.arange(3)}
    store.save(arrays, {"epoch": 1, "loss": float("nan"), "n": np.int64(3)})
    meta = store.load()[1]
    assert meta["n"] == 3 and np.isnan(meta["loss"])
    store.save({**arrays, "w": arrays["w"] + 1}, {"epoch": 2})
    loaded, meta = store.load()
    assert meta == {"epoch": 2}
    np.testing.assert_array_equal(loaded["w"], arrays["w"] + 1)
    assert loaded["w"].dtype == np.float32
    # one file, replaced on every save
    assert sorted(p.name for p in store.folder.iterdir()) == ["entry.json", "state.npz"]
    with pytest.raises(ValueError, match="reserved"):
        store.save({"meta": np.zeros(1)}, {})
    store.clear()
    assert not store.folder.exists()
    assert store.load() is None


# ----------------------------------------------------------------------
# units: one per repeat, cached and dispatched one by one
# ----------------------------------------------------------------------
def test_fold_units():
    X = np.zeros((12, 1))
    assert fold_units(list(KFold(4).split(X)), 12) == [[0, 1, 2, 3]]
    repeated = RepeatedKFold(n_splits=3, n_repeats=3, random_state=0)
    assert fold_units(list(repeated.split(X)), 12) == [[0, 1, 2], [3, 4, 5], [6, 7, 8]]
    shuffled = ShuffleSplit(5, test_size=0.5, random_state=0)
    assert fold_units(list(shuffled.split(X)), 12) == [[0, 1, 2, 3, 4]]


def test_repeats_are_units_cached_separately(study, tmp_path):
    memory = tmp_path / "cache"
    first = study["scorer"](str(memory), repeats=2).fit(study["X"])
    assert first.method_ == "batched" and first.n_fits_from_cache_ == 0
    units = sorted(Path(memory).rglob("_cached_fit_batched_and_score/*/output.pkl"))
    assert len(units) == 2
    # drop one repeat's entry: only its three fits are computed again
    shutil.rmtree(units[0].parent)
    again = study["scorer"](str(memory), repeats=2).fit(study["X"])
    assert again.n_fits_from_cache_ == 3
    np.testing.assert_array_equal(again.loglik_, first.loglik_)


def test_units_run_in_parallel_workers_identically(study):
    import joblib

    one = study["scorer"](repeats=2).fit(study["X"])
    with joblib.parallel_config(backend="threading"):
        two = study["scorer"](repeats=2, n_jobs=2).fit(study["X"])
    np.testing.assert_array_equal(one.loglik_, two.loglik_)


@pytest.mark.skipif(
    "MUTANT_UNDER_TEST" in os.environ,
    reason="a LocalCluster hangs in a process forked from one that ran one, "
    "and mutmut forks every mutant from the process of its first run",
)
def test_dask_cluster_gives_identical_scores(study):
    distributed = pytest.importorskip("distributed")
    import joblib

    ref = study["scorer"](repeats=2).fit(study["X"])
    cluster = distributed.LocalCluster(
        n_workers=2,
        threads_per_worker=1,
        processes=True,
        host="127.0.0.1",
        dashboard_address=None,
        silence_logs=40,
    )
    with cluster, distributed.Client(cluster) as client:
        with distributed.get_task_stream(client) as stream:
            with joblib.parallel_config(backend="dask"):
                mem = study["scorer"](repeats=2, n_jobs=-1).fit(study["X"])
        workers = {t["worker"] for t in stream.data}
    np.testing.assert_array_equal(mem.loglik_, ref.loglik_)
    np.testing.assert_array_equal(mem.memorization_scores_, ref.memorization_scores_)
    assert workers  # the units ran on the cluster's workers

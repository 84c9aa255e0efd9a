"""Long work is discoverable: one INFO line for fold-batched training."""

import logging

import numpy as np
import pytest

from sklearn_mem import MemorizationScorer


def test_fold_batched_training_logs_one_info_line(caplog):
    pytest.importorskip("torch")
    pytest.importorskip("skorch")
    from sklearn_mem.models import FlowDensity

    X = np.random.RandomState(0).randn(40, 2).astype(np.float32)
    flow = FlowDensity(n_layers=2, hidden_dims=(8,), max_epochs=1, batch_size=20)
    with caplog.at_level(logging.INFO, logger="sklearn_mem"):
        mem = MemorizationScorer(flow, cv=2, random_state=0, refit=False).fit(X)
    assert mem.method_ == "batched"
    lines = [r.getMessage() for r in caplog.records if "fold-batched" in r.getMessage()]
    assert len(lines) == 1
    assert "2 fits of FlowDensity" in lines[0] and "verbose=1" in lines[0]


def test_refits_stay_silent(caplog):
    from sklearn.mixture import GaussianMixture

    X = np.random.RandomState(0).randn(40, 2)
    with caplog.at_level(logging.INFO, logger="sklearn_mem"):
        MemorizationScorer(GaussianMixture(2), cv=2, random_state=0).fit(X)
    assert not [r for r in caplog.records if r.levelno >= logging.INFO]

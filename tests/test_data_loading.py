"""The data loader never unpickles a user's file."""

import numpy as np
import pytest

from sklearn_mem.cli import CLIError, load_data


class _Payload:
    """Unpickling this object creates the file ``path`` (a harmless marker)."""

    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        return (open, (self.path, "w"))


def _object_array(marker):
    values = np.empty(2, dtype=object)
    values[0], values[1] = _Payload(marker), 1.0
    return values


def test_the_payload_runs_when_unpickled(tmp_path):
    # the premise: loading these files with allow_pickle=True runs the payload
    marker = tmp_path / "control"
    np.savez(tmp_path / "control.npz", X=_object_array(marker))
    with np.load(tmp_path / "control.npz", allow_pickle=True) as archive:
        archive["X"]
    assert marker.exists()


@pytest.mark.parametrize("key", [None, "X"])
def test_npz_with_pickled_objects_is_refused_unrun(tmp_path, key):
    marker = tmp_path / "ran"
    path = tmp_path / "data.npz"
    np.savez(path, X=_object_array(marker))
    with pytest.raises(CLIError, match="unpickle"):
        load_data(path, key=key)
    assert not marker.exists()


def test_npz_with_one_pickled_array_among_numeric_ones(tmp_path):
    marker = tmp_path / "ran"
    path = tmp_path / "data.npz"
    np.savez(path, X=np.zeros((5, 2)), extra=_object_array(marker))
    assert load_data(path, key="X").X.shape == (5, 2)  # numeric arrays load
    with pytest.raises(CLIError, match="unpickle"):
        load_data(path, key="extra")
    assert not marker.exists()


def test_npy_with_pickled_objects_is_refused_unrun(tmp_path):
    marker = tmp_path / "ran"
    path = tmp_path / "data.npy"
    np.save(path, _object_array(marker), allow_pickle=True)
    with pytest.raises(CLIError, match="unpickle"):
        load_data(path)
    assert not marker.exists()

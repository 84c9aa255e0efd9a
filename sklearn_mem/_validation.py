"""Input checks shared by the analysis modules (neighbors, metrics)."""

from sklearn.utils import check_array

_ARRAY = ["array-like"]


def _check_set(X, name, *, fix):
    """Validate one sample set: 2-D, finite, numeric, at least one row."""
    X = check_array(X, ensure_min_samples=0, input_name=name, dtype="numeric")
    if X.shape[0] == 0:
        raise ValueError(
            f"{name} is empty (shape {X.shape}); at least one sample is needed. {fix}"
        )
    return X


def _check_sets(**named):
    """Validate several sets and check that they share their feature count.

    ``named`` maps a name to ``(X, fix)``; ``X`` may be None (skipped).
    Returns the validated arrays in the same order.
    """
    out = {}
    for name, (X, fix) in named.items():
        out[name] = None if X is None else _check_set(X, name, fix=fix)
    names = [n for n, X in out.items() if X is not None]
    ref = names[0]
    for name in names[1:]:
        if out[name].shape[1] != out[ref].shape[1]:
            raise ValueError(
                f"{name} has {out[name].shape[1]} features but {ref} has "
                f"{out[ref].shape[1]}; every set must describe the same "
                "features (columns) in the same order. Pass the sets in the "
                "same representation (e.g. the raw flattened images for all "
                "of them) and use feature_map to change the representation."
            )
    return [out[n] for n in named]

"""Normalizing flows from zuko (https://github.com/probabilists/zuko).

:class:`ZukoFlowDensity` trains any unconditional zuko flow (NSF, MAF,
RealNVP, NAF, ...) as a scikit-learn density estimator on
:class:`~sklearn_mem.models.DensityNet`. zuko is optional: it is imported
only when a flow is named by a string, so ``import sklearn_mem.models``
works without it.

The flow is built afresh from ``random_state`` at every fit, never trained
in place: a flow class (or any callable) is called with ``features=`` the
number of columns and ``flow_kwargs`` under torch's global RNG seeded from
the init stream; a flow object is deep-copied and every submodule with a
``reset_parameters`` method is re-initialised under that seed.
"""

import copy
import warnings

import torch
from torch import nn

from ._base import DensityNet

__all__ = ["ZukoFlowDensity"]

_INSTALL_HINT = (
    "Install it with: pip install zuko (or, from a clone of sklearn_mem, "
    'pip install -e ".[torch]")'
)


def _import_zuko_flows():
    try:
        import zuko.flows
    except ImportError as exc:
        raise ImportError(
            f"ZukoFlowDensity needs zuko to build a flow by name. {_INSTALL_HINT}."
        ) from exc
    return zuko.flows


def _resolve_flow(flow):
    """A flow class for a zuko flow name; anything else unchanged."""
    if not isinstance(flow, str):
        return flow
    flows = _import_zuko_flows()
    names = sorted(
        name
        for name in dir(flows)
        if isinstance(getattr(flows, name), type)
        and issubclass(getattr(flows, name), flows.Flow)
        and getattr(flows, name) is not flows.Flow
    )
    if flow not in names:
        raise ValueError(
            f"flow={flow!r} is not a flow of zuko.flows; expected one of "
            f"{', '.join(names)}, a flow class or a flow object."
        )
    return getattr(flows, flow)


def _reset_parameters(module):
    """Re-initialise ``module`` in place; return the parameters left as they were.

    Every submodule with a ``reset_parameters`` method resets itself (and is
    not descended into); parameters outside such submodules are listed.
    """
    covered = set()

    def walk(m):
        if callable(getattr(m, "reset_parameters", None)):
            m.reset_parameters()
            covered.update(id(p) for p in m.parameters())
            return
        for child in m.children():
            walk(child)

    walk(module)
    return [name for name, p in module.named_parameters() if id(p) not in covered]


class _ZukoFlowModule(nn.Module):
    """The torch module of :class:`ZukoFlowDensity`: a freshly built flow.

    ``forward`` and ``log_prob`` return ``flow().log_prob(x)``; ``sample``
    draws ``flow().sample((n,))`` (from torch's global RNG, which the net
    seeds). Built before the number of features is known (``n_features``
    None) from a flow class, it holds no flow yet.
    """

    def __init__(self, flow="NSF", flow_kwargs=None, n_features=None):
        super().__init__()
        flow = _resolve_flow(flow)
        flow_kwargs = dict(flow_kwargs or {})
        if isinstance(flow, nn.Module):
            if flow_kwargs:
                raise ValueError(
                    f"flow_kwargs={flow_kwargs!r} is set, but flow is an "
                    f"already built {type(flow).__name__}; pass its class "
                    "(or name) for flow_kwargs to apply."
                )
            built = copy.deepcopy(flow)  # the user's object is never trained
            kept = _reset_parameters(built)
            if kept:
                shown = ", ".join(kept[:4]) + (", ..." if len(kept) > 4 else "")
                warnings.warn(
                    f"The parameters {shown} of the {type(flow).__name__} "
                    "flow are not in a submodule with reset_parameters, so "
                    "every fit starts them from the values of the flow you "
                    "passed, whatever the random_state. Pass the flow's class "
                    "(e.g. flow=zuko.flows.GF) and flow_kwargs to draw them "
                    "from random_state.",
                    UserWarning,
                    stacklevel=2,
                )
        elif callable(flow):
            if "features" in flow_kwargs:
                raise ValueError(
                    f"flow_kwargs sets features={flow_kwargs['features']!r}; "
                    "the number of features is taken from the data. Remove it."
                )
            if n_features is None:  # no data yet: built when fit sees X
                self.flow = None
                self.n_features = None
                self._placeholder = nn.Parameter(torch.zeros(0))
                return
            built = flow(features=int(n_features), **flow_kwargs)
        else:
            raise TypeError(
                f"flow={flow!r}; expected the name of a zuko flow (e.g. "
                '"NSF"), a flow class such as zuko.flows.NSF, or a flow '
                "object such as zuko.flows.NSF(features=2)."
            )
        self.flow = built
        self.n_features = self._check_flow(built, n_features)

    @staticmethod
    def _check_flow(flow, n_features):
        """Check that ``flow()`` is an unconditional distribution over vectors."""
        name = type(flow).__name__
        if not isinstance(flow, nn.Module):
            raise TypeError(
                f"The flow factory returned {name}; expected a torch module "
                "such as a zuko flow."
            )
        try:
            dist = flow()
        except Exception as exc:
            raise ValueError(
                f"Calling the {name} flow without a context failed ({exc}); "
                "ZukoFlowDensity needs an unconditional flow (context=0)."
            ) from exc
        shape = tuple(getattr(dist, "event_shape", ()))
        if len(shape) != 1 or not all(
            callable(getattr(dist, m, None)) for m in ("log_prob", "sample")
        ):
            raise TypeError(
                f"The {name} flow returned {type(dist).__name__} with event "
                f"shape {shape}; expected a distribution over vectors (event "
                "shape (n_features,)) with log_prob and sample, as zuko "
                "flows return."
            )
        if n_features is not None and shape[0] != int(n_features):
            raise ValueError(
                f"The {name} flow models {shape[0]} features, but X has "
                f"{n_features}. Build it with features={n_features}, or pass "
                "its class (e.g. flow=zuko.flows.NSF, with flow_kwargs) so "
                "that the features follow the data."
            )
        tensors = [*flow.parameters(), *flow.buffers()]
        device = tensors[0].device if tensors else None
        try:
            with torch.no_grad():
                dist.log_prob(torch.zeros(1, shape[0], device=device))
        except Exception as exc:
            raise ValueError(
                f"The {name} flow could not score a row without a context "
                f"({exc}); ZukoFlowDensity needs an unconditional flow "
                "(context=0)."
            ) from exc
        return shape[0]

    def _distribution(self):
        if self.flow is None:
            raise RuntimeError("The flow is not built yet: fit the estimator first.")
        return self.flow()

    def forward(self, x):
        return self._distribution().log_prob(x)

    def log_prob(self, x):
        """Exact log-density of each row."""
        return self._distribution().log_prob(x)

    def sample(self, n):
        """``n`` draws from the flow (torch's global RNG)."""
        return self._distribution().sample((n,))


class ZukoFlowDensity(DensityNet):
    """A normalizing flow from zuko as a scikit-learn density estimator.

    Trains any unconditional flow of `zuko <https://zuko.readthedocs.io>`_,
    the maintained PyTorch flow library (neural spline flows, MAF, RealNVP,
    NAF, ...), by maximum likelihood, and scores with its exact
    ``log_prob``. Everything else is :class:`DensityNet`'s: seeding,
    ``clone``, pickling, :class:`~sklearn.model_selection.GridSearchCV`,
    checkpoints and :class:`~sklearn_mem.MemorizationScorer`. Flows model
    continuous data: standardise features first (e.g.
    ``make_pipeline(StandardScaler(), ZukoFlowDensity())``; zuko's spline
    flows transform the interval [-5, 5] and are the identity outside).

    The flow is rebuilt from ``random_state`` at every fit, so the same seed
    gives bit-identical parameters, scores and samples, different seeds
    differ, and the object passed as ``flow`` is never trained.
    Cross-validation folds are fitted one by one: zuko's transforms are not
    written for fold-stacked inputs (:class:`FlowDensity`, whose RealNVP is,
    trains them as one model).

    Parameters
    ----------
    flow : str, flow class or callable, or torch.nn.Module, default="NSF"
        The flow. A name of a flow class of ``zuko.flows`` (``"NSF"``,
        ``"MAF"``, ``"RealNVP"``, ...; needs zuko) or a class or callable
        is called as ``flow(features=n_features, **flow_kwargs)`` at fit,
        with the number of features of ``X``, under a seeded RNG. A built
        unconditional flow (e.g. ``zuko.flows.NSF(features=64,
        transforms=3)``, or any module whose ``flow()`` returns a
        distribution over vectors) is deep-copied at fit and every
        submodule with ``reset_parameters`` (all of zuko's linear layers)
        is re-initialised from ``random_state``; anything else in it
        (random masks, orders, and parameters outside such submodules, for
        which a warning is raised) keeps the object's values, so a class is
        the more thorough choice.
    flow_kwargs : dict or None, default=None
        Keyword arguments of a flow class or callable (``transforms``,
        ``hidden_features``, ``bins``, ...), but not ``features``.
    lr : float, default=1e-3
        Adam learning rate.
    max_epochs : int, default=50
        Training epochs.
    batch_size : int, default=128
        Training and scoring batch size.
    random_state : int, RandomState instance or None, default=None
        Seeds the flow's initialisation, batch order and :meth:`sample`.
    device : str, default="cpu"
        Torch device.
    verbose : int, default=0
        skorch's per-epoch log when > 0.
    **kwargs
        Other :class:`DensityNet` / skorch parameters (``optimizer``,
        ``optimizer__weight_decay``, ``checkpoint_epochs``, ``callbacks``,
        ...).

    Attributes
    ----------
    module_ : torch.nn.Module
        The fitted module; its ``flow`` attribute is the trained zuko flow.
    n_features_in_ : int
        Number of features seen during :meth:`fit`.

    See Also
    --------
    FlowDensity : RealNVP flow written for fold batching.

    Examples
    --------
    >>> import pytest
    >>> zuko = pytest.importorskip("zuko")  # the example needs zuko
    >>> import numpy as np
    >>> from sklearn_mem.models import ZukoFlowDensity
    >>> X = np.random.RandomState(0).normal(size=(64, 2))
    >>> est = ZukoFlowDensity(zuko.flows.NSF(features=2, transforms=1),
    ...                       max_epochs=2, random_state=0).fit(X)
    >>> est.score_samples(X[:3]).shape
    (3,)
    >>> est.sample(4, random_state=0).shape
    (4, 2)
    >>> est = ZukoFlowDensity("MAF", flow_kwargs={"transforms": 2},
    ...                       max_epochs=2, random_state=0).fit(X)
    >>> est.fold_batching_unavailable_reason()
    'ZukoFlowDensity trains a zuko flow (MAF), ...'
    """

    def __init__(
        self,
        flow="NSF",
        *,
        flow_kwargs=None,
        lr=1e-3,
        max_epochs=50,
        batch_size=128,
        random_state=None,
        device="cpu",
        verbose=0,
        **kwargs,
    ):
        self.flow = flow
        self.flow_kwargs = flow_kwargs
        # skorch lists ``module`` among the parameters, so clone passes it back
        module = kwargs.pop("module", _ZukoFlowModule)
        super().__init__(
            module,
            lr=lr,
            max_epochs=max_epochs,
            batch_size=batch_size,
            random_state=random_state,
            device=device,
            verbose=verbose,
            **kwargs,
        )

    def initialize_module(self):
        """Build the flow afresh, seeded by ``random_state``."""
        if self.module is not _ZukoFlowModule:
            raise ValueError(
                "ZukoFlowDensity builds its module from the flow parameter; "
                f"got module={self.module!r}. Use DensityNet for a module of "
                "your own."
            )
        return super().initialize_module()

    def _default_module_kwargs(self):
        return {
            "flow": self.flow,
            "flow_kwargs": self.flow_kwargs,
            "n_features": getattr(self, "n_features_in_", None),
        }

    def _module_needs_rebuild(self):
        return getattr(self.module_, "n_features", None) != self.n_features_in_

    def _flow_name(self):
        flow = self.flow
        if isinstance(flow, str):
            return flow
        if isinstance(flow, nn.Module):
            return type(flow).__name__
        return getattr(flow, "__name__", type(flow).__name__)

    def fold_batching_unavailable_reason(self):
        """Why the folds are fitted one by one: always a reason.

        Returns
        -------
        reason : str
            zuko's transforms are not written for fold-stacked inputs, so
            :class:`~sklearn_mem.MemorizationScorer` fits one clone per
            split (``method_ == "refit"``).
        """
        return (
            f"ZukoFlowDensity trains a zuko flow ({self._flow_name()}), whose "
            "transforms are not written for fold-stacked inputs, so its folds "
            "are fitted one by one (the RealNVP of FlowDensity can be batched)"
        )

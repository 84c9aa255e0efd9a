"""Adaptive importance sampling: add samples only to the rows that need them.

The importance-weighted estimate of a row, ``log p = log mean_s w_s``, has a
Monte Carlo standard error that the row's own weights estimate (delta
method)::

    se(log p) ~ sd(w) / (sqrt(S) * mean(w))

:func:`adaptive_log_prob` draws a first block of ``first`` samples for every
row, then doubles the samples of the rows whose standard error is above the
target (samples ``S .. 2S`` continue the same sequence, so a row's estimate
is the one a fixed ``S`` would give), until every row meets it or reaches
``largest``. Every row's result depends on its own weights only.
"""

import math

import torch


class RunningIWAE:
    """Per-row running sums of importance weights, in float64.

    Holds the row maximum ``m`` of the log weights and the sums of
    ``exp(log_w - m)`` and of its square, rescaled whenever ``m`` grows.

    Parameters
    ----------
    n_rows : int
    device : torch.device or str, default="cpu"
    """

    def __init__(self, n_rows, device="cpu"):
        kw = {"dtype": torch.float64, "device": device}
        self.top = torch.full((n_rows,), -math.inf, **kw)
        self.sum = torch.zeros(n_rows, **kw)
        self.sum_sq = torch.zeros(n_rows, **kw)
        self.count = torch.zeros(n_rows, dtype=torch.int64, device=device)

    def add(self, rows, log_w):
        """Add the log weights ``log_w`` (len(rows), s) of rows ``rows``."""
        log_w = log_w.to(torch.float64)
        new_top = torch.maximum(self.top[rows], log_w.max(dim=1).values)
        safe = torch.where(torch.isfinite(new_top), new_top, torch.zeros_like(new_top))
        old = torch.exp(self.top[rows] - safe)  # 0 for the first block
        e = torch.exp(log_w - safe[:, None])
        self.sum[rows] = self.sum[rows] * old + e.sum(dim=1)
        self.sum_sq[rows] = self.sum_sq[rows] * old * old + (e * e).sum(dim=1)
        self.top[rows] = new_top
        self.count[rows] += log_w.shape[1]

    def log_prob(self):
        """``log mean_s w_s`` of every row."""
        return torch.log(self.sum / self.count) + self.top

    def stderr(self):
        """Delta-method standard error of :meth:`log_prob` (nats)."""
        S = self.count.to(torch.float64)
        mean = self.sum / S
        var = torch.clamp(self.sum_sq / S - mean * mean, min=0.0) * S / (S - 1)
        return torch.sqrt(var / S) / mean


def adaptive_log_prob(log_weights, n_rows, target_se, first, largest, device="cpu"):
    """IWAE estimates whose standard error is at most ``target_se``, per row.

    Parameters
    ----------
    log_weights : callable
        ``log_weights(rows, begin, end)`` returns the log weights of samples
        ``begin .. end`` of the rows ``rows`` (a LongTensor), shape
        ``(len(rows), end - begin)``; the first call has every row and
        ``begin = 0``.
    n_rows : int
    target_se : float
        Standard error (nats) at which a row stops.
    first : int
        Samples of the first block.
    largest : int
        Most samples a row gets (it stops above the target there).
    device : torch.device or str, default="cpu"

    Returns
    -------
    log_prob, stderr : Tensor of shape (n_rows,), float64
    count : LongTensor of shape (n_rows,)
        The samples each row used.

    Examples
    --------
    >>> import torch
    >>> from sklearn_mem.models._adaptive import adaptive_log_prob
    >>> gen = torch.Generator().manual_seed(0)
    >>> spread = torch.tensor([0.01, 1.0])  # row 1 has noisy weights
    >>> def log_weights(rows, begin, end):
    ...     return spread[rows, None] * torch.randn(len(rows), end - begin,
    ...                                             generator=gen)
    >>> _, se, count = adaptive_log_prob(log_weights, 2, 0.05, 16, 4096)
    >>> count.tolist()
    [16, 2048]
    >>> bool((se <= 0.05).all())
    True
    """
    acc = RunningIWAE(n_rows, device)
    rows = torch.arange(n_rows, device=device)
    begin, end = 0, int(first)
    while len(rows):
        acc.add(rows, log_weights(rows, begin, end))
        if end >= largest:
            break
        rows = rows[acc.stderr()[rows] > target_se]
        begin, end = end, min(2 * end, int(largest))
    return acc.log_prob(), acc.stderr(), acc.count

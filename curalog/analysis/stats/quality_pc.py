"""Isolation in PC space: isolation distance, L-ratio, d', nearest-neighbour rates, silhouette.

The features are Kilosort's own ``pc_features.npy`` (``(n_spikes, n_pcs, n_loc)``: each
spike's projection on ``n_pcs`` principal components on the ``n_loc`` channels
``pc_feature_ind[template]`` of its template), used as the Allen Institute's
``ecephys_spike_sorting`` quality-metrics module uses them (``calculate_pc_metrics``): each
cluster is compared on *its* channels with the spikes of the clusters that have features
on those channels, with bounded subsampling. The metric formulas are SpikeInterface 0.105's
(``spikeinterface.metrics.quality.pca_metrics``), re-implemented from their definitions.

How the point sets are chosen (the part the papers leave open; fixed here so that a cluster's
values depend on its spikes only, which is what makes them cacheable by cluster id):

* **channels** ``C``: the first ``n_channels`` (4) entries of ``pc_feature_ind`` of the
  cluster's dominant template (Kilosort lists a template's channels most relevant first:
  decreasing amplitude in Kilosort 2/3, nearest to the template's centre in Kilosort 4);
* a spike *has features on* ``C`` when its template's ``pc_feature_ind`` row contains every
  channel of ``C`` (Allen's ``make_channel_mask``: units lacking a channel are excluded);
  its feature vector is ``pc_features[s, :, j]`` at those channels' positions
  (``n_pcs * n_channels`` numbers);
* **self**: the cluster's spikes ``s`` with ``h(s) < min(1, max_self / N)`` that have
  features on ``C``, where ``h`` is a fixed pseudo-random number per spike (splitmix64 of the
  spike index and ``seed``, scaled to [0, 1)): a bounded (about ``max_self`` = 500, the size
  of SpikeInterface's ``random_spikes``), reproducible subsample;
* **others**: the spikes of *other* clusters that have features on ``C``, subsampled the
  same way to about ``max_other`` (1,000) with ``h(s) < max_other / n_candidates``.

Because ``h`` is per spike, the self subsample of a merge is exactly the union of its
parents' subsamples thinned by the new threshold (composed, no pass over the merged spikes),
and the "others" of a cluster are independent of how the other spikes are clustered: a
merge elsewhere leaves ``isolation_distance``, ``l_ratio``, ``d_prime`` and the nearest-
neighbour rates of this cluster unchanged. Only ``silhouette`` reads the others' *labels*
(the nearest other cluster); the engine keys it by the set of labels present among the
others, which - ids never being reused - determines the labelling exactly.

Metrics (``X`` self points, ``Y`` other points, ``d = n_pcs * n_channels``):

isolation_distance, l_ratio
    Schmitzer-Torbert et al. (2005), SpikeInterface ``mahalanobis_metrics``: squared
    Mahalanobis distances ``D^2`` of ``Y`` to the mean of ``X`` under the inverse of ``X``'s
    covariance (``np.cov``, ``n - 1``); ``n = min(|X|, |Y|)``; isolation distance = the
    ``n``-th smallest ``D^2``; L-ratio = ``sum(1 - chi2_cdf(D^2, d)) / |X|``; NaN when
    ``n < 2`` or the covariance is singular.
d_prime
    Hill et al. (2011), SpikeInterface ``d_prime_metric``: ``X`` and ``Y`` projected on the
    two-class Fisher discriminant (what scikit-learn's ``LinearDiscriminantAnalysis`` gives
    with one component, up to sign), ``(mean_X - mean_Y) / sqrt((var_X + var_Y) / 2)``.
    scikit-learn's sign depends on an SVD's sign convention; curalog orients the axis from
    ``Y`` to ``X`` so d' is never negative.
nn_hit_rate, nn_miss_rate
    Chung et al. (2017), SpikeInterface ``nearest_neighbors_metrics`` (``n_neighbors`` 5,
    ``max_spikes`` 10,000): the 5 nearest neighbours (Euclidean, the point itself excluded)
    of every point of ``X ∪ Y``; hit rate = fraction of ``X``'s neighbours in ``X``, miss
    rate = fraction of ``Y``'s neighbours in ``X``. 1 and 0 when there are no others.
silhouette
    Hruschka et al. (2004) simplified silhouette, SpikeInterface's default
    (``simplified_silhouette_score``): ``a_i`` = distance of self point ``i`` to ``X``'s
    centroid; for each other cluster ``L`` present in ``Y``, its centroid over its points
    in ``Y``; ``b_i`` = distances to the centroid of the cluster with the smallest mean
    distance; ``mean((b - a) / max(a, b))``. NaN without others.

Cost per cluster: gathering ``|X| + |Y|`` feature rows (random reads) plus ``O(|Y| d^2)``
for the Mahalanobis distances and an exact 5-nearest-neighbour search over ``|X| + |Y|``
(about 1,500) points (float32 distances as a filter, see :func:`_knn`); independent of the
cluster's size except the ``O(N)`` hash pass over its spikes when it is computed from
scratch (not on merge). Once per dataset: the hash index of every template's spikes.
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass
from typing import Any

import numba
import numpy as np

from curalog.analysis.stats.pools import pool
from curalog.clustering import _counting_sort

__all__ = [
    "PCParams",
    "PCSample",
    "PCSpace",
    "mahalanobis",
    "d_prime",
    "nn_rates",
    "simplified_silhouette",
    "spike_hash",
]

_NAN_ROW = {
    "isolation_distance": math.nan,
    "l_ratio": math.nan,
    "d_prime": math.nan,
    "nn_hit_rate": math.nan,
    "nn_miss_rate": math.nan,
}


@dataclass(frozen=True)
class PCParams:
    n_channels: int = 4
    max_self: int = 500
    max_other: int = 1000
    n_neighbors: int = 5
    nn_max_spikes: int = 10_000
    seed: int = 0


@numba.njit(cache=True, nogil=True)
def _splitmix01(x):
    z = (np.uint64(x) + np.uint64(0x9E3779B97F4A7C15)) & np.uint64(0xFFFFFFFFFFFFFFFF)
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    z = z ^ (z >> np.uint64(31))
    return (z >> np.uint64(11)) * (1.0 / 9007199254740992.0)  # 53 bits -> [0, 1)


@numba.njit(cache=True, nogil=True)
def _salt(seed):
    """What a spike index is xor-ed with before :func:`_splitmix01` (one per seed)."""
    return np.uint64(seed) * np.uint64(0xD1B54A32D192ED03)


@numba.njit(cache=True, nogil=True)
def _hash_many(spikes, seed):
    out = np.empty(spikes.shape[0], dtype=np.float64)
    salt = _salt(seed)
    for k in range(spikes.shape[0]):
        out[k] = _splitmix01(np.uint64(spikes[k]) ^ salt)
    return out


@numba.njit(cache=True, nogil=True)
def _below(spikes, seed, p):
    salt = _salt(seed)
    keep = np.zeros(spikes.shape[0], dtype=np.bool_)
    for k in range(spikes.shape[0]):
        keep[k] = _splitmix01(np.uint64(spikes[k]) ^ salt) < p
    return spikes[keep]


def _by_template(st: np.ndarray, n_templates: int) -> tuple[np.ndarray, np.ndarray]:
    """``(order, offsets)``: ``order[offsets[t]:offsets[t + 1]]`` are the spikes of template
    ``t`` in increasing order (``np.argsort(st, kind="stable")``, by the state index's
    counting sort)."""
    n_t = max(int(n_templates), int(st.max()) + 1 if st.shape[0] else 0)
    # the index is kept for the session: 4 bytes a spike while int32 can number them all
    index = np.int32 if st.shape[0] < 2**31 - 1 else np.int64
    order = np.empty(st.shape[0], dtype=index)
    offsets = _counting_sort(st, n_t, order)
    return order, offsets


@numba.njit(cache=True, nogil=True)
def _sort_groups_by_hash(order, offsets, t0, t1, seed):  # pragma: no cover - numba
    """Reorder each group ``order[offsets[t]:offsets[t + 1]]``, ``t0 <= t < t1``, by
    increasing hash: a bucket sort (the hashes are uniform in [0, 1): ``n`` buckets for ``n``
    spikes, then an insertion pass that only meets the few inversions inside a bucket).

    Only the split at a threshold is ever read (the spikes with ``h < q`` form a prefix),
    so the order among equal hashes does not matter."""
    salt = _salt(seed)
    most = 0
    for t in range(t0, t1):
        most = max(most, offsets[t + 1] - offsets[t])
    h = np.empty(most, dtype=np.float64)
    tmp_s = np.empty(most, dtype=order.dtype)
    tmp_h = np.empty(most, dtype=np.float64)
    counts = np.empty(most + 1, dtype=np.int64)
    for t in range(t0, t1):
        a = offsets[t]
        n = offsets[t + 1] - a
        if n < 2:
            continue
        counts[: n + 1] = 0
        for k in range(n):
            h[k] = _splitmix01(np.uint64(order[a + k]) ^ salt)
            counts[min(int(h[k] * n), n - 1) + 1] += 1
        for k in range(n):
            counts[k + 1] += counts[k]
        for k in range(n):
            bk = min(int(h[k] * n), n - 1)
            pos = counts[bk]
            counts[bk] += 1
            tmp_s[pos] = order[a + k]
            tmp_h[pos] = h[k]
        for k in range(1, n):
            v = tmp_h[k]
            sv = tmp_s[k]
            j = k - 1
            while j >= 0 and tmp_h[j] > v:
                tmp_h[j + 1] = tmp_h[j]
                tmp_s[j + 1] = tmp_s[j]
                j -= 1
            tmp_h[j + 1] = v
            tmp_s[j + 1] = sv
        for k in range(n):
            order[a + k] = tmp_s[k]


@numba.njit(cache=True, nogil=True)
def _others_below(order, offsets, tids, seed, q, own):  # pragma: no cover - numba
    """The spikes of templates ``tids`` with hash ``< q`` (each group is sorted by hash: a
    binary search, hashing on the fly), less those in ``own`` (sorted), sorted."""
    salt = _salt(seed)
    ends = np.empty(tids.shape[0], dtype=np.int64)
    total = 0
    for r in range(tids.shape[0]):
        t = tids[r]
        lo = offsets[t]
        hi = offsets[t + 1]
        while lo < hi:  # first position whose hash is >= q
            mid = (lo + hi) // 2
            if _splitmix01(np.uint64(order[mid]) ^ salt) < q:
                lo = mid + 1
            else:
                hi = mid
        ends[r] = lo
        total += lo - offsets[t]
    out = np.empty(total, dtype=np.int64)
    k = 0
    for r in range(tids.shape[0]):
        for pos in range(offsets[tids[r]], ends[r]):
            out[k] = order[pos]
            k += 1
    out.sort()
    keep = 0
    n_own = own.shape[0]
    j = 0
    for k in range(total):  # both sorted: one merge walk drops the cluster's own spikes
        v = out[k]
        while j < n_own and own[j] < v:
            j += 1
        if j < n_own and own[j] == v:
            continue
        out[keep] = v
        keep += 1
    return out[:keep]


@numba.njit(cache=True, nogil=True)
def _gather_features(features, st, lookup, pos, spikes):  # pragma: no cover - numba
    """``out[r, p * C + c] = features[s, p, pos[lookup[st[s]], c]]`` for ``s = spikes[r]``
    (float64; the template's positions of the channels ``C``)."""
    n_pcs = features.shape[1]
    n_c = pos.shape[1]
    out = np.empty((spikes.shape[0], n_pcs * n_c), dtype=np.float64)
    for r in range(spikes.shape[0]):
        s = spikes[r]
        row = pos[lookup[st[s]]]
        for p in range(n_pcs):
            for c in range(n_c):
                out[r, p * n_c + c] = features[s, p, row[c]]
    return out


def spike_hash(spikes: np.ndarray, seed: int = 0) -> np.ndarray:
    """The fixed pseudo-random number in [0, 1) of each spike (splitmix64)."""
    return _hash_many(np.ascontiguousarray(spikes, dtype=np.int64), int(seed))


def _threshold(n: int, bound: int) -> float:
    return 1.0 if n <= bound else bound / n


@dataclass
class PCSample:
    """The point sets of one cluster (spike indices; features are gathered on demand)."""

    hashed: np.ndarray  # the cluster's spikes with h < max_self / N (sorted), before channels
    channels: np.ndarray  # C
    self_spikes: np.ndarray  # hashed spikes with features on C
    other_spikes: np.ndarray  # sorted
    values: dict[str, float]
    # the feature rows, kept only until the first silhouette is computed from them
    x: np.ndarray | None = None
    y: np.ndarray | None = None


class PCSpace:
    """Dataset-wide access to ``pc_features`` / ``pc_feature_ind`` (thread-safe, lazy)."""

    def __init__(self, dataset: Any, params: PCParams | None = None):
        self.params = params or PCParams()
        self.dataset = dataset
        self.features = None
        self.ind: np.ndarray | None = None
        opt = getattr(dataset, "optional_array", None)
        try:
            feats = opt("pc_features.npy") if opt else None
            ind = opt("pc_feature_ind.npy") if opt else None
        except Exception:  # a malformed optional file only costs these columns
            feats = ind = None
        n = int(dataset.spike_templates.shape[0])
        if (
            feats is not None
            and ind is not None
            and feats.ndim == 3
            and feats.shape[0] == n
            and ind.ndim == 2
            and ind.shape[1] == feats.shape[2]
            and ind.shape[0] >= int(dataset.n_templates)
        ):
            self.features = feats
            self.ind = np.asarray(ind).astype(np.int64)
        self.spike_templates = dataset.spike_templates
        self._lock = threading.Lock()
        self._order: np.ndarray | None = None  # spikes by template (then by hash, see below)
        self._offsets: np.ndarray = np.zeros(1, dtype=np.int64)
        self._cover: dict[tuple[int, ...], tuple[np.ndarray, np.ndarray]] = {}
        self._base_counts: np.ndarray | None = None
        self.templates_sorted = 0  # counter: templates in the hash index (built once)
        self.hash_passes = 0  # counter: self subsamples drawn from a cluster's spikes
        self.hash_composed = 0  # counter: self subsamples composed from parents

    @property
    def available(self) -> bool:
        return self.features is not None

    # ------------------------------------------------------------------ dataset-level
    def base_counts(self) -> np.ndarray:
        if self._base_counts is None:
            _, offsets = self._hash_index()
            self._base_counts = np.diff(offsets)
        return self._base_counts

    def channels_of(self, template: int) -> np.ndarray:
        return self.ind[int(template), : self.params.n_channels].copy()

    def covering(self, channels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Templates whose channels contain all of ``channels`` and the positions (t, k)."""
        key = tuple(int(c) for c in channels)
        with self._lock:
            got = self._cover.get(key)
        if got is not None:
            return got
        ind = self.ind
        match = ind[:, :, None] == np.asarray(channels)[None, None, :]  # (T, n_loc, |C|)
        has = match.any(axis=1).all(axis=1)
        tids = np.flatnonzero(has)
        pos = np.argmax(match[tids], axis=1)  # (|tids|, |C|) position of each channel
        got = (tids, pos)
        with self._lock:
            self._cover[key] = got
        return got

    def _hash_index(self) -> tuple[np.ndarray, np.ndarray]:
        """``(order, offsets)``: each template's spikes at ``order[offsets[t]:offsets[t+1]]``
        by increasing hash (built once: a counting sort by template, then each group bucket-
        sorted by hash, the templates in two halves on two threads)."""
        with self._lock:
            if self._order is None:
                st = np.ascontiguousarray(np.asarray(self.spike_templates))
                order, offsets = _by_template(st, int(self.ind.shape[0]))
                n_t = offsets.shape[0] - 1
                mid = int(np.searchsorted(offsets, offsets[-1] // 2))
                mid = min(max(mid, 0), n_t)
                seed = self.params.seed
                second = pool("pc-index", 1).submit(
                    _sort_groups_by_hash, order, offsets, mid, n_t, seed
                )
                _sort_groups_by_hash(order, offsets, 0, mid, seed)
                second.result()
                self._order, self._offsets = order, offsets
                self.templates_sorted = n_t
            return self._order, self._offsets

    def gather(self, spikes: np.ndarray, channels: np.ndarray) -> np.ndarray:
        """Feature vectors ``(len(spikes), n_pcs * |C|)`` float64 (spikes sorted, covered)."""
        if spikes.shape[0] == 0:
            return np.zeros((0, self.features.shape[1] * channels.shape[0]))
        tids, pos = self.covering(channels)
        lookup = np.full(self.ind.shape[0], -1, dtype=np.int64)
        lookup[tids] = np.arange(tids.shape[0])
        return _gather_features(
            self.features,
            np.asarray(self.spike_templates),
            lookup,
            np.ascontiguousarray(pos, dtype=np.int64),
            np.ascontiguousarray(spikes, dtype=np.int64),
        )

    # ------------------------------------------------------------------ per cluster
    def hashed_subsample(
        self, spikes: np.ndarray, parents: list[PCSample] | None = None
    ) -> np.ndarray:
        """The cluster's spikes with ``h < max_self / N``, composed from parents if given."""
        p = _threshold(int(spikes.shape[0]), self.params.max_self)
        if parents:
            cand = np.concatenate([q.hashed for q in parents])
            cand.sort()
            self.hash_composed += 1
            return _below(cand, self.params.seed, p)
        self.hash_passes += 1
        return _below(np.ascontiguousarray(spikes, dtype=np.int64), self.params.seed, p)

    def sample(
        self,
        spikes: np.ndarray,
        template: int | None,
        template_ids: np.ndarray,
        template_counts: np.ndarray,
        parents: list[PCSample] | None = None,
    ) -> PCSample | None:
        """The point sets and the label-free metrics of one cluster (None: no features)."""
        if not self.available or template is None or spikes.shape[0] == 0:
            return None
        pp = self.params
        hashed = self.hashed_subsample(spikes, parents)
        channels = self.channels_of(template)
        tids, _ = self.covering(channels)
        covered = np.zeros(self.ind.shape[0], dtype=bool)
        covered[tids] = True
        st = np.asarray(self.spike_templates)
        self_spikes = hashed[covered[st[hashed]]] if hashed.shape[0] else hashed
        own = dict(zip(template_ids.tolist(), template_counts.tolist(), strict=True))
        counts = self.base_counts()
        n_cand = int(counts[tids].sum()) - sum(own.get(int(t), 0) for t in tids)
        q = _threshold(max(n_cand, 0), pp.max_other)
        tids64 = np.ascontiguousarray(tids, dtype=np.int64)
        order, offsets = self._hash_index()
        others = _others_below(order, offsets, tids64, pp.seed, q, np.ascontiguousarray(spikes))
        x = self.gather(self_spikes, channels)
        y = self.gather(others, channels)
        values = dict(_NAN_ROW)
        if x.shape[0]:
            iso, lr = mahalanobis(x, y)
            hit, miss = nn_rates(x, y, pp.n_neighbors, pp.nn_max_spikes)
            values.update(
                isolation_distance=iso,
                l_ratio=lr,
                d_prime=d_prime(x, y),
                nn_hit_rate=hit,
                nn_miss_rate=miss,
            )
        return PCSample(hashed, channels, self_spikes, others, values, x, y)

    def silhouette(self, s: PCSample, other_labels: np.ndarray) -> float:
        x, y = s.x, s.y
        s.x = s.y = None  # later labellings gather again (rare: a neighbour changed)
        if x is None or y is None:
            x = self.gather(s.self_spikes, s.channels)
            y = self.gather(s.other_spikes, s.channels)
        return simplified_silhouette(x, y, other_labels)


# ---------------------------------------------------------------------- formulas
def mahalanobis(x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """``(isolation_distance, l_ratio)`` of self points ``x`` against others ``y``."""
    from scipy.special import chdtrc

    n = min(x.shape[0], y.shape[0])
    if n < 2:
        return math.nan, math.nan
    mean = x.mean(axis=0)
    try:
        vi = np.linalg.inv(np.atleast_2d(np.cov(x.T)))
    except np.linalg.LinAlgError:
        return math.nan, math.nan
    d = y - mean
    d2 = np.sort(np.sum((d @ vi) * d, axis=1))
    l_ratio = float(np.sum(chdtrc(x.shape[1], d2)) / x.shape[0])
    return float(d2[n - 1]), l_ratio


def d_prime(x: np.ndarray, y: np.ndarray) -> float:
    """d' along the two-class Fisher discriminant (oriented from ``y`` to ``x``)."""
    if x.shape[0] < 1 or y.shape[0] < 1 or x.shape[0] + y.shape[0] < 3:
        return math.nan
    mx, my = x.mean(axis=0), y.mean(axis=0)
    sw = (x - mx).T @ (x - mx) + (y - my).T @ (y - my)
    try:
        w = np.linalg.solve(sw, mx - my)
    except np.linalg.LinAlgError:
        w = np.linalg.lstsq(sw, mx - my, rcond=None)[0]
    px, py = x @ w, y @ w
    den = math.sqrt((float(np.var(px)) + float(np.var(py))) / 2)
    if den == 0:
        return math.nan
    return float((px.mean() - py.mean()) / den)


def nn_rates(
    x: np.ndarray, y: np.ndarray, n_neighbors: int = 5, max_spikes: int = 10_000
) -> tuple[float, float]:
    """``(nn_hit_rate, nn_miss_rate)`` (see the module docstring)."""
    if y.shape[0] == 0:
        return 1.0, 0.0
    pts = np.concatenate([x, y])
    n_self = x.shape[0]
    ratio = max_spikes / pts.shape[0]
    if ratio < 1:  # SpikeInterface's evenly spaced subsample
        pts = pts[np.arange(0, pts.shape[0] - 1, 1 / ratio).astype(int)]
        n_self = int(n_self * ratio)
    k = min(n_neighbors, pts.shape[0] - 1)
    if k < 1 or n_self == 0:
        return math.nan, math.nan
    nb = _knn(pts, k)
    hit = float(np.mean(nb[:n_self] < n_self))
    miss = float(np.mean(nb[n_self:] < n_self)) if nb.shape[0] > n_self else math.nan
    return hit, miss


@numba.njit(cache=True, nogil=True)
def _sq_dists(pt, i, buf):  # pragma: no cover - numba
    """``buf[j]`` = squared distance of point ``i`` to point ``j`` of ``pt`` (``(dim, n)``),
    one contiguous (vectorised) pass per dimension, summed in dimension order."""
    buf[:] = 0.0
    for c in range(pt.shape[0]):
        x = pt[c, i]
        row = pt[c]
        for j in range(buf.shape[0]):
            t = row[j] - x
            buf[j] += t * t


@numba.njit(cache=True, nogil=True)
def _sq_dists6(pt, i, buf):  # pragma: no cover - numba
    """:func:`_sq_dists` six dimensions per pass (a sixth of the loads and stores of
    ``buf``: 12 dimensions, 3 PCs x 4 channels, are two passes); the sum is ordered
    differently, which only the float32 filter uses (its rounding bound holds for any order
    of summing positive terms)."""
    dim = pt.shape[0]
    buf[:] = 0.0
    c = 0
    while c + 6 <= dim:
        x0, x1, x2 = pt[c, i], pt[c + 1, i], pt[c + 2, i]
        x3, x4, x5 = pt[c + 3, i], pt[c + 4, i], pt[c + 5, i]
        r0, r1, r2, r3, r4, r5 = pt[c], pt[c + 1], pt[c + 2], pt[c + 3], pt[c + 4], pt[c + 5]
        for j in range(buf.shape[0]):
            t0 = r0[j] - x0
            t1 = r1[j] - x1
            t2 = r2[j] - x2
            t3 = r3[j] - x3
            t4 = r4[j] - x4
            t5 = r5[j] - x5
            buf[j] += ((t0 * t0 + t1 * t1) + (t2 * t2 + t3 * t3)) + (t4 * t4 + t5 * t5)
        c += 6
    while c < dim:
        x = pt[c, i]
        row = pt[c]
        for j in range(buf.shape[0]):
            t = row[j] - x
            buf[j] += t * t
        c += 1


@numba.njit(cache=True, nogil=True)
def _knn_kernel(pt, k):  # pragma: no cover - numba
    """``pt`` is ``(dim, n)``: for each point, squared distances to all points in one
    contiguous (vectorised) pass per dimension, then the ``k`` smallest by insertion."""
    dim, n = pt.shape
    out = np.empty((n, k), dtype=np.int64)
    buf = np.empty(n)
    best_d = np.empty(k)
    best_i = np.empty(k, dtype=np.int64)
    for i in range(n):
        _sq_dists(pt, i, buf)
        m = 0
        for j in range(n):
            # visited in index order: an equal distance never displaces an earlier index
            if j == i or (m == k and not buf[j] < best_d[k - 1]):
                continue
            m = _insert_pair(best_d, best_i, m, k, buf[j], j)
        for q in range(k):
            out[i, q] = best_i[q]
    return out


@numba.njit(cache=True, nogil=True)
def _insert_pair(best_d, best_i, m, k, v, j):  # pragma: no cover - numba
    """Keep the ``k`` smallest (distance, index) pairs in order; returns how many are kept.

    Ordering by the pair makes ties go to the lower index whatever the visiting order."""
    if m == k:
        if v > best_d[k - 1] or (v == best_d[k - 1] and j > best_i[k - 1]) or v != v:
            return m
        pos = k - 1
    else:
        if v != v:  # NaN distances are never neighbours
            return m
        pos = m
        m += 1
    while pos > 0 and (best_d[pos - 1] > v or (best_d[pos - 1] == v and best_i[pos - 1] > j)):
        best_d[pos] = best_d[pos - 1]
        best_i[pos] = best_i[pos - 1]
        pos -= 1
    best_d[pos] = v
    best_i[pos] = j
    return m


@numba.njit(cache=True, nogil=True)
def _exact_rows(pts, i, j):  # pragma: no cover - numba
    """The squared distance of points ``i`` and ``j`` of the point-major ``(n, dim)`` rows,
    summed in dimension order in float64: the value :func:`_knn_kernel` computes."""
    acc = 0.0
    for c in range(pts.shape[1]):
        t = pts[j, c] - pts[i, c]
        acc += t * t
    return acc


_GROUP = 16  # points per group of the bound (a vector-friendly strided partition)


@numba.njit(cache=True, nogil=True)
def _knn_bounded_kernel(pt, p32, k, margin):  # pragma: no cover - numba
    """The exact ``k`` nearest neighbours, with float32 distances as a filter.

    For point ``i``: float32 squared distances to every point (half the width of float64:
    twice the points per vector instruction), and the minimum of each group ``g`` of the
    strided partition ``{g, g + G, g + 2G, ...}`` (element-wise, so it vectorises too). The
    ``k``-th smallest group minimum is the distance of ``k`` distinct points, an upper bound
    ``U`` on the ``k``-th nearest. Within float32's rounding (relative error ``gamma``,
    ``margin >= (1 + gamma)^2``), every point that can be among the ``k`` nearest has a
    float32 distance ``<= U * margin``; those few (about ``k``) get their exact float64
    distance (:func:`_exact_rows`) and the ``k`` smallest pairs are kept (:func:`_insert_pair`).
    The result is the brute-force kernel's, index for index."""
    dim, npad = p32.shape
    n = pt.shape[1]
    pts = np.ascontiguousarray(pt.T)  # point-major: a candidate's exact distance reads 2 rows
    groups = npad // _GROUP
    out = np.empty((n, k), dtype=np.int64)
    buf = np.empty(npad, dtype=np.float32)
    mins = np.empty(groups, dtype=np.float32)
    bound = np.empty(k, dtype=np.float32)
    best_d = np.empty(k)
    best_i = np.empty(k, dtype=np.int64)
    for i in range(n):
        _sq_dists6(p32, i, buf)
        buf[i] = np.inf
        mins[:] = buf[:groups]
        for q in range(1, _GROUP):
            base = q * groups
            for g in range(groups):
                v = buf[base + g]
                mins[g] = v if v < mins[g] else mins[g]
        # the k-th smallest group minimum: the first k sorted, then insertions below it
        for g in range(k):
            v = mins[g] if g < groups else np.float32(np.inf)
            pos = g
            while pos > 0 and bound[pos - 1] > v:
                bound[pos] = bound[pos - 1]
                pos -= 1
            bound[pos] = v
        thr = bound[k - 1]
        for g in range(k, groups):
            v = mins[g]
            if v < thr:
                pos = k - 1
                while pos > 0 and bound[pos - 1] > v:
                    bound[pos] = bound[pos - 1]
                    pos -= 1
                bound[pos] = v
                thr = bound[k - 1]
        lim = np.float64(thr) * margin + 1e-30  # + underflow slack
        m = 0
        for g in range(groups):
            if mins[g] <= lim:
                for q in range(_GROUP):
                    j = q * groups + g
                    if j < n and j != i and buf[j] <= lim:
                        m = _insert_pair(best_d, best_i, m, k, _exact_rows(pts, i, j), j)
        if m < k:  # fewer finite candidates than k (NaN or infinite coordinates)
            m = 0
            for j in range(n):
                if j != i:
                    m = _insert_pair(best_d, best_i, m, k, _exact_rows(pts, i, j), j)
        for q in range(k):
            out[i, q] = best_i[q]
    return out


def _knn(pts: np.ndarray, k: int) -> np.ndarray:
    """Indices of the ``k`` nearest other points of every point (exact).

    A point is never its own neighbour (scikit-learn's ``kneighbors()`` without ``X``);
    equidistant neighbours are ordered by index, which scikit-learn's trees may not do.
    Points that float32 holds exactly (Kilosort's ``pc_features`` are float32) and of a
    moderate magnitude take the float32-filtered kernel; others the float64 brute force.
    Both give the same indices."""
    pt = np.ascontiguousarray(np.asarray(pts, dtype=np.float64).T)
    k = int(k)
    dim, n = pt.shape
    with np.errstate(over="ignore", invalid="ignore"):
        p32 = pt.astype(np.float32)
    exact32 = np.array_equal(p32, pt) and (n == 0 or float(np.max(np.abs(pt))) < 1e15)
    if not exact32 or n < 2 * _GROUP or k < 1:
        return _knn_kernel(pt, k)
    groups = -(-n // _GROUP)
    padded = np.full((dim, groups * _GROUP), np.inf, dtype=np.float32)
    padded[:, :n] = p32
    gamma = (dim + 3) * 2.0**-24  # subtraction, square and dim additions, rounded to float32
    margin = (1 + 2 * gamma) ** 2  # twice the bound, squared (both sides of the comparison)
    return _knn_bounded_kernel(pt, padded, k, margin)


def simplified_silhouette(x: np.ndarray, y: np.ndarray, labels: np.ndarray) -> float:
    """Simplified silhouette of ``x`` against the clusters ``labels`` of ``y``.

    Every other cluster's centroid at once (sums per label), the mean distance of the self
    points to each, the nearest by that mean (ties: the smaller label, as SpikeInterface's
    loop over ``np.unique`` keeps the first strict minimum)."""
    if x.shape[0] == 0 or y.shape[0] == 0:
        return math.nan
    labs, inv = np.unique(np.asarray(labels), return_inverse=True)
    return float(
        _silhouette_kernel(
            np.ascontiguousarray(x, dtype=np.float64),
            np.ascontiguousarray(y, dtype=np.float64),
            np.ascontiguousarray(inv.reshape(-1), dtype=np.int64),
            int(labs.shape[0]),
        )
    )


@numba.njit(cache=True, nogil=True, error_model="numpy")
def _silhouette_kernel(x, y, inv, n_labels):  # pragma: no cover - numba
    """The numbers of :func:`simplified_silhouette`: ``a_i`` to the own centroid, the
    others' centroids by label, the label with the smallest mean distance (first strict
    minimum), ``mean((b - a) / max(a, b))`` (NaN terms where both are 0, as numpy's)."""
    n_x, dim = x.shape
    mean = np.zeros(dim)
    for i in range(n_x):
        for c in range(dim):
            mean[c] += x[i, c]
    for c in range(dim):
        mean[c] /= n_x
    sums = np.zeros((n_labels, dim))
    counts = np.zeros(n_labels)
    for j in range(y.shape[0]):
        g = inv[j]
        counts[g] += 1.0
        for c in range(dim):
            sums[g, c] += y[j, c]
    for g in range(n_labels):
        for c in range(dim):
            sums[g, c] /= counts[g]
    d = np.empty((n_x, n_labels))
    for i in range(n_x):
        for g in range(n_labels):
            acc = 0.0
            for c in range(dim):
                t = x[i, c] - sums[g, c]
                acc += t * t
            d[i, g] = np.sqrt(acc)
    best = 0
    best_mean = np.inf
    for g in range(n_labels):
        m = 0.0
        for i in range(n_x):
            m += d[i, g]
        m /= n_x
        if m < best_mean:
            best_mean = m
            best = g
    total = 0.0
    for i in range(n_x):
        acc = 0.0
        for c in range(dim):
            t = x[i, c] - mean[c]
            acc += t * t
        a = np.sqrt(acc)
        b = d[i, best]
        total += (b - a) / max(b, a)
    return total / n_x

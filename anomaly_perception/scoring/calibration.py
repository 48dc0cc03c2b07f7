"""Calibration: raw scores -> probabilities people can act on.

Raw scores (NLL in nats, MaxLogit, reconstruction error) are not
comparable across models. :class:`EmpiricalCalibration` maps a raw score
to the fraction of *normal validation* samples that scored lower (the
empirical CDF), a number in [0, 1] with the same meaning for every model:
0.99 means "higher than 99% of normal frames". A threshold is chosen as a
target false-alarm rate on normal data.

The calibration is stored as sorted normal scores (at most
``max_points`` quantiles) in the model manifest.

Above the highest normal score an empirical CDF says 1.0 for everything, so
a rare but normal view and a hazard look the same. With ``tail_quantile``
(models trained from bags), the scores above that quantile are modelled by
an exponential tail, ``P(score > x) = (1 - q) * exp(-(x - x_q) / scale)``,
with ``scale`` the mean excess over ``x_q`` (its maximum-likelihood
estimate): probabilities keep growing beyond the validation maximum
(0.999, 0.99999...), which is what a threshold for a false-alarm *rate per
hour* needs.
"""

# Copyright 2026 The anomaly_perception Authors
#
# Licensed under the Apache License, Version 2.0 (the "License");
# you may not use this file except in compliance with the License.
# You may obtain a copy of the License at
#
#     http://www.apache.org/licenses/LICENSE-2.0
#
# Unless required by applicable law or agreed to in writing, software
# distributed under the License is distributed on an "AS IS" BASIS,
# WITHOUT WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied.
# See the License for the specific language governing permissions and
# limitations under the License.

import numpy as np


class EmpiricalCalibration:
    """Empirical CDF of normal validation scores.

    Example::

        cal = EmpiricalCalibration.fit(nll_of_normal_validation_frames)
        p = cal.probability(new_scores)          # in [0, 1]
        threshold = cal.threshold_for_fpr(0.01)  # flags ~1% of normal frames

    """

    def __init__(self, sorted_scores, n_samples=None, tail=None):
        scores = np.asarray(sorted_scores, dtype=np.float64)
        if scores.ndim != 1 or scores.size == 0:
            raise ValueError('calibration needs at least one normal score')
        if not np.all(np.isfinite(scores)):
            raise ValueError('calibration scores must be finite')
        if np.any(np.diff(scores) < 0):
            raise ValueError('calibration scores must be sorted')
        self.scores = scores
        self.n_samples = int(n_samples if n_samples is not None else scores.size)
        self.tail = dict(tail) if tail else None
        if self.tail is not None and not (0 < self.tail['quantile'] < 1
                                          and self.tail['scale'] > 0):
            raise ValueError(f'invalid calibration tail {self.tail}')

    @classmethod
    def fit(cls, normal_scores, max_points=2001, tail_quantile=None):
        """Calibrate on scores of normal samples (NaN/inf are dropped).

        ``tail_quantile`` (e.g. 0.9) adds the exponential tail of the module
        docs above that quantile (it needs at least 10 scores above it).
        """
        scores = np.asarray(normal_scores, dtype=np.float64).reshape(-1)
        scores = np.sort(scores[np.isfinite(scores)])
        if scores.size == 0:
            raise ValueError('calibration needs at least one finite normal score')
        n = scores.size
        tail = None
        if tail_quantile is not None:
            start = float(np.quantile(scores, tail_quantile))
            excess = scores[scores > start] - start
            if excess.size < 10:
                raise ValueError(f'a tail above the {tail_quantile} quantile needs at least 10 '
                                 f'normal scores above it, got {excess.size}')
            tail = {'quantile': float(tail_quantile), 'start': start,
                    'scale': float(max(excess.mean(), 1e-9))}
        if n > max_points:
            scores = np.quantile(scores, np.linspace(0, 1, max_points), method='linear')
        return cls(scores, n, tail)

    @classmethod
    def fit_tailed(cls, normal_scores, tail_quantile=0.9):
        """Calibrate with an exponential tail when the scores allow one (held-out frames).

        The tail needs at least 10 scores above its start; a short held-out set
        moves the start down, and one without enough distinct high scores gets
        no tail (the CDF alone, saturating at its maximum).
        """
        quantile = min(tail_quantile, 1 - 10 / max(np.size(normal_scores), 1))
        try:
            return cls.fit(normal_scores, tail_quantile=quantile)
        except ValueError:
            return cls.fit(normal_scores)

    def probability(self, raw):
        """Fraction of normal scores strictly below ``raw`` (NaN stays NaN).

        Monotone non-decreasing; the normal samples it was fitted on map to
        an (almost) uniform spread over [0, 1].
        """
        raw = np.asarray(raw, dtype=np.float64)
        below = np.searchsorted(self.scores, raw, side='left') / self.scores.size
        if self.tail is not None:
            t = self.tail
            with np.errstate(over='ignore', invalid='ignore'):
                upper = 1 - (1 - t['quantile']) * np.exp(-(raw - t['start']) / t['scale'])
            below = np.where(raw > t['start'], np.maximum(upper, t['quantile']), below)
        return np.where(np.isnan(raw), np.nan, below)

    def raw_for_probability(self, probability):
        """Inverse of :meth:`probability`: the raw score that maps to ``probability``."""
        p = float(probability)
        if self.tail is not None and p > self.tail['quantile']:
            t = self.tail
            return t['start'] + t['scale'] * np.log((1 - t['quantile']) / max(1 - p, 1e-300))
        return float(np.quantile(self.scores, min(max(p, 0.0), 1.0)))

    def threshold_for_fpr(self, fpr):
        """Raw-score threshold above which about ``fpr`` of normal samples fall."""
        if not 0 < fpr < 1:
            raise ValueError(f'target false-positive rate must be in (0, 1), got {fpr}')
        if self.tail is not None and 1 - fpr > self.tail['quantile']:
            return float(self.raw_for_probability(1 - fpr))
        return float(np.quantile(self.scores, 1 - fpr))

    def to_dict(self):
        out = {'method': 'empirical_cdf', 'n_samples': self.n_samples,
               'sorted_scores': [float(v) for v in self.scores]}
        if self.tail is not None:
            out['tail'] = {k: float(v) for k, v in self.tail.items()}
        return out

    @classmethod
    def from_dict(cls, data):
        if data.get('method') != 'empirical_cdf':
            raise ValueError(f"unknown calibration method {data.get('method')!r}")
        return cls(data['sorted_scores'], data.get('n_samples'), data.get('tail'))

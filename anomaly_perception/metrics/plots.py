"""Plots written next to the JSON numbers (matplotlib, headless, atomic PNGs)."""

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

import io

import numpy as np

from .binary import binary_curve
from .binary import BinaryCurve
from ..io.files import atomic_write_bytes


def _figure(width=5.0, height=4.0):
    import matplotlib
    matplotlib.use('Agg', force=True)
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(width, height), dpi=110)
    return plt, fig, ax


def _save(plt, fig, path):
    buf = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buf, format='png')
    plt.close(fig)
    atomic_write_bytes(path, buf.getvalue())
    return path


def roc_plot(path, curves, title='ROC'):
    """ROC curves: ``curves`` maps a name to ``(labels, scores)`` (1 = anomaly)."""
    plt, fig, ax = _figure()
    for name, (labels, scores) in curves.items():
        curve = binary_curve(np.asarray(labels) != 0, scores)
        fpr, tpr, _ = curve.roc()
        ax.plot(fpr, tpr, label=f'{name} (AUROC {curve.auroc():.3f})')
    ax.plot([0, 1], [0, 1], color='0.7', lw=0.8, ls='--')
    ax.set_xlabel('false positive rate')
    ax.set_ylabel('true positive rate')
    ax.set_title(title)
    ax.legend(loc='lower right', fontsize=8)
    return _save(plt, fig, path)


def pr_plot(path, curves, title='Precision-recall'):
    """PR curves: ``curves`` maps a name to ``(labels, scores)`` or a BinaryCurve."""
    plt, fig, ax = _figure()
    for name, item in curves.items():
        if isinstance(item, BinaryCurve):
            curve = item
        else:
            labels, scores = item
            curve = binary_curve(np.asarray(labels) != 0, scores)
        precision, recall, _ = curve.precision_recall()
        ax.step(np.concatenate([[0], recall]), np.concatenate([[1], precision]), where='post',
                label=f'{name} (AP {curve.average_precision():.3f})')
    ax.set_xlabel('recall')
    ax.set_ylabel('precision')
    ax.set_ylim(0, 1.02)
    ax.set_title(title)
    ax.legend(loc='lower left', fontsize=8)
    return _save(plt, fig, path)


def score_histogram(path, normal, anomalous, threshold=None, xlabel='score', title=None):
    """Overlaid histograms of normal and anomalous scores, with the threshold."""
    plt, fig, ax = _figure()
    both = np.concatenate([normal, anomalous])
    both = both[np.isfinite(both)]
    lo, hi = np.percentile(both, [0.5, 99.5]) if both.size else (0, 1)
    bins = np.linspace(lo, hi, 60)
    ax.hist(np.clip(normal, lo, hi), bins=bins, alpha=0.6, label=f'normal ({len(normal)})',
            density=True)
    ax.hist(np.clip(anomalous, lo, hi), bins=bins, alpha=0.6,
            label=f'anomalous ({len(anomalous)})', density=True)
    if threshold is not None and np.isfinite(threshold):
        ax.axvline(threshold, color='k', lw=1, ls='--', label='threshold')
    ax.set_xlabel(xlabel)
    ax.set_ylabel('density')
    if title:
        ax.set_title(title)
    ax.legend(fontsize=8)
    return _save(plt, fig, path)


def bar_plot(path, x_labels, series, ylabel, title=None, reference=None):
    """Draw grouped bars with error bars: ``series`` maps a name to ``(means, stds)``.

    ``reference`` is an optional ``(name, values)`` drawn as markers over
    the groups (e.g. a paper's figures).
    """
    plt, fig, ax = _figure(6.0, 4.0)
    xs = np.arange(len(x_labels))
    width = 0.8 / max(1, len(series))
    for i, (name, (means, stds)) in enumerate(series.items()):
        ax.bar(xs + (i - (len(series) - 1) / 2) * width, np.asarray(means, float), width,
               yerr=np.asarray(stds, float), capsize=3, label=name)
    if reference is not None:
        ax.plot(xs, np.asarray(reference[1], float), 'k_', markersize=20, mew=2,
                label=reference[0])
    ax.set_xticks(xs)
    ax.set_xticklabels([str(v) for v in x_labels])
    ax.set_ylabel(ylabel)
    ax.set_ylim(0.0, 1.0)
    if title:
        ax.set_title(title)
    ax.grid(alpha=0.3, axis='y')
    ax.legend(fontsize=8)
    return _save(plt, fig, path)


def series_plot(path, x_labels, series, xlabel, ylabel, title=None):
    """Lines with error bars: ``series`` maps a name to ``(means, stds)`` over ``x_labels``."""
    plt, fig, ax = _figure(5.5, 4.0)
    xs = np.arange(len(x_labels))
    for name, (means, stds) in series.items():
        means, stds = np.asarray(means, float), np.asarray(stds, float)
        ok = np.isfinite(means)
        ax.errorbar(xs[ok], means[ok], yerr=stds[ok], marker='o', capsize=3, label=name)
    ax.set_xticks(xs)
    ax.set_xticklabels([str(v) for v in x_labels])
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return _save(plt, fig, path)

"""``evaluate bags``: replay many bags as Ray tasks and merge them into one fleet report.

Each bag is one task: :meth:`~.job.ReplayJob.run` (the same code as
``replay``) reads the bag where it is stored and writes its replay
directory, ``OUT/bags/<name>/``, itself; only a short summary comes back
over Ray. A local Ray instance is started with ``workers`` CPUs unless an
``address`` names a cluster. The run is resumable: a bag whose replay
directory is complete is not replayed again. A bag that cannot be replayed
(corrupt, missing, no camera topic) or has no labels is reported with its
cause and the others finish; :func:`evaluate_bags` then returns the report
with those bags listed under ``failed``.

Files written in ``OUT``: ``bags/<name>/`` (each bag's replay),
``fleet_report.json`` (a row per bag, pooled metrics, failures; see
:mod:`.pool`) and ``fleet.png`` (per-bag false alarms per hour and frame
AUROC, the pooled precision-recall curves).
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

import hashlib
import io
import logging
import os
from pathlib import Path
import sys
import time

import numpy as np

from .pool import pool
from .pool import pooled_curves
from .pool import read_replay
from ..errors import AnomalyPerceptionError
from ..errors import UsageError
from ..io.files import atomic_write_bytes
from ..io.files import atomic_write_json
from ..replay.engine import POOLED_FILE
from ..runtime.backends import THREADS_VARIABLE

FLEET_REPORT = 'fleet_report.json'
FLEET_PLOT = 'fleet.png'


def read_bag_list(path):
    """Return the bags listed in ``path``: one per line; blank lines and ``#`` comments skipped."""
    try:
        lines = Path(path).read_text().splitlines()
    except OSError as err:
        raise UsageError(f'--list {str(path)!r}: {err.strerror}.') from None
    bags = [line.split('#', 1)[0].strip() for line in lines]
    return [b for b in bags if b]


def bag_names(bags):
    """Return a directory name per bag: its file name, made unique with a hash of its path."""
    stems = [Path(b).name.removesuffix('.mcap').removesuffix('.db3') or 'bag' for b in bags]
    names = []
    for bag, stem in zip(bags, stems):
        if stems.count(stem) > 1:
            digest = hashlib.sha1(str(Path(bag).resolve()).encode()).hexdigest()[:8]
            stem = f'{stem}-{digest}'
        names.append(stem)
    if len(set(names)) != len(names):
        raise UsageError('a bag is listed twice: ' + ', '.join(sorted(
            {b for b, n in zip(bags, names) if names.count(n) > 1})))
    return names


def replay_task(job, bag, out_dir):
    """Replay one bag (a Ray task, or called in-process); return a short summary.

    Never raises for a bad bag: the summary says ``failed`` with the cause.
    """
    started = time.perf_counter()
    summary = {'bag': str(bag), 'out': str(out_dir)}
    try:
        report = job.run(bag, out_dir, overwrite=True, show_progress=False)
    except AnomalyPerceptionError as err:
        return {**summary, 'status': 'failed', 'cause': f'{type(err).__name__}: {err}'}
    except Exception as err:  # noqa: B902 - one bad bag must not stop the fleet
        return {**summary, 'status': 'failed',
                'cause': f'unexpected {type(err).__name__}: {err}'}
    return {**summary, 'status': 'ok', 'frames': report['frames_scored'],
            'labelled': 'labels' in report, 'wall_s': time.perf_counter() - started}


def _one_thread_replay_task(job, bag, out_dir):
    """Run :func:`replay_task` with one inference thread (a Ray task on one CPU).

    Set in the worker itself, not by a Ray runtime environment: Ray starts
    new workers for a runtime environment instead of the ones it started
    beforehand (0.8 s more for eight 15 s bags on 2 cores).
    """
    os.environ[THREADS_VARIABLE] = '1'
    return replay_task(job, bag, out_dir)


def _complete(out_dir):
    return (out_dir / 'report.json').is_file() and (out_dir / POOLED_FILE).is_file()


class _Progress:
    """Bags done, frames per second and ETA, on one line (stderr)."""

    def __init__(self, total, resumed, show):
        self.total, self.done, self.frames = total, resumed, 0
        self.started, self.show, self.fresh = time.perf_counter(), show, 0
        self.say(f'evaluate bags: {total} bag(s), {resumed} already replayed')

    def say(self, text):
        if self.show:
            print(text, file=sys.stderr, flush=True)

    def update(self, name, summary):
        self.done += 1
        self.fresh += 1
        self.frames += summary.get('frames', 0)
        elapsed = time.perf_counter() - self.started
        left = self.total - self.done
        eta = elapsed / self.fresh * left
        state = (f"{summary['frames']} frames" if summary['status'] == 'ok'
                 else f"FAILED: {summary['cause']}")
        self.say(f'[{self.done}/{self.total}] {name}: {state} | '
                 f'{self.frames / elapsed if elapsed else 0:.1f} frames/s, '
                 f'{elapsed:.0f} s elapsed, ETA {eta:.0f} s')


def _start_ray(workers, address):
    try:
        import ray
    except ImportError:
        raise UsageError('evaluate bags runs on Ray, which is not installed: pip install '
                         '"anomaly_perception[fleet]" (or pip install ray).') from None
    if not ray.is_initialized():
        if address:
            ray.init(address=address, logging_level=logging.WARNING, log_to_driver=False)
        else:
            ray.init(num_cpus=workers, include_dashboard=False, logging_level=logging.WARNING,
                     log_to_driver=False)
    return ray


def evaluate_bags(bags, out, job, *, workers=2, address=None, show_progress=True):
    """Replay ``bags`` with ``job`` on Ray, ``workers`` at a time; write and return the report.

    Returns the fleet report (:func:`.pool.pool` plus ``failed``: ``[{name,
    bag, cause}]``, ``workers``, ``wall_s``; ``ray_start_s`` and ``tasks_s``, the
    parts of ``wall_s`` spent starting or joining Ray and running the tasks).

    Raises:
        UsageError: no bags, a bag listed twice, ``workers`` < 1, Ray missing,
            or a job that does not resolve (bad pipelines, place or models).

    """
    if not bags:
        raise UsageError('evaluate bags: no bag given.')
    if workers < 1:
        raise UsageError('--workers must be at least 1.')
    job.resolve()           # bad options fail here, once, not in every task
    out = Path(out)
    (out / 'bags').mkdir(parents=True, exist_ok=True)
    names = bag_names([str(b) for b in bags])
    dirs = {name: out / 'bags' / name for name in names}
    todo = [(str(b), n) for b, n in zip(bags, names) if not _complete(dirs[n])]
    progress = _Progress(len(names), len(names) - len(todo), show_progress)
    started = time.perf_counter()
    summaries, phases = {}, {'ray_start_s': 0.0, 'tasks_s': 0.0}
    if todo:
        ray = _start_ray(workers, address)
        phases['ray_start_s'] = time.perf_counter() - started
        # One task, one CPU, and so one inference thread: ONNX Runtime would take a thread per
        # core in every worker otherwise, and the workers would fight over the cores.
        task = ray.remote(num_cpus=1, max_retries=0)(_one_thread_replay_task)
        pending, queue = {}, list(todo)
        while queue or pending:
            while queue and len(pending) < workers:
                bag, name = queue.pop(0)
                pending[task.remote(job, bag, str(dirs[name]))] = name
            ready, _ = ray.wait(list(pending), num_returns=1)
            for ref in ready:
                name = pending.pop(ref)
                try:
                    summaries[name] = ray.get(ref)
                except Exception as err:  # noqa: B902 - a worker lost: report, go on
                    summaries[name] = {'bag': '', 'status': 'failed',
                                       'cause': f'the task failed: {type(err).__name__}: {err}'}
                progress.update(name, summaries[name])
        phases['tasks_s'] = time.perf_counter() - started - phases['ray_start_s']
    replays, failed = [], []
    for bag, name in zip(bags, names):
        summary = summaries.get(name, {'status': 'ok'})
        if summary['status'] != 'ok':
            failed.append({'name': name, 'bag': str(bag), 'cause': summary['cause']})
            continue
        try:
            report, pooled = read_replay(dirs[name])
        except AnomalyPerceptionError as err:
            failed.append({'name': name, 'bag': str(bag), 'cause': str(err)})
            continue
        if 'labels' not in report:
            failed.append({'name': name, 'bag': str(bag),
                           'cause': 'no labels: the bag has no frame-label topic and the job '
                                    'no --labels; replayed, left out of the pooled metrics'})
        replays.append((name, report, pooled))
    fleet = {**pool(replays), 'listed': len(names), 'failed': failed, 'workers': workers,
             'address': address or 'local', 'wall_s': time.perf_counter() - started,
             'replayed_now': len(todo), 'resumed': len(names) - len(todo),
             'pipelines': job.pipelines, 'place': job.place, **phases}
    atomic_write_json(out / FLEET_REPORT, fleet, indent=1)
    _plot(out / FLEET_PLOT, fleet, replays)
    return fleet


def _plot(path, fleet, replays):
    """Per-bag false alarms per hour and frame AUROC; the pooled precision-recall curves."""
    import matplotlib
    matplotlib.use('Agg', force=True)
    import matplotlib.pyplot as plt
    from ..metrics.binary import binary_curve
    rows = fleet['rows']
    fig, axes = plt.subplots(1, 3, figsize=(15, 4), dpi=100)
    names = [r['name'] for r in rows]
    xs = np.arange(len(rows))
    series = sorted({b for r in rows for b in r['branches']})
    width = 0.8 / max(1, len(series))
    for k, branch in enumerate(series):
        offset = (k - (len(series) - 1) / 2) * width
        fah = [r['branches'].get(branch, {}).get('false_alarms_per_hour', np.nan) for r in rows]
        auroc = [r['branches'].get(branch, {}).get('frame_auroc', np.nan) for r in rows]
        axes[0].bar(xs + offset, np.nan_to_num(np.asarray(fah, float)), width, label=branch)
        axes[1].bar(xs + offset, np.nan_to_num(np.asarray(auroc, float)), width, label=branch)
    for ax, title in ((axes[0], 'false alarms per hour of normal driving'),
                      (axes[1], 'frame AUROC')):
        ax.set_xticks(xs)
        ax.set_xticklabels(names, rotation=60, ha='right', fontsize=7)
        ax.set_title(title, fontsize=10)
        ax.grid(alpha=0.3, axis='y')
        if series:
            ax.legend(fontsize=7)
    axes[0].set_ylim(bottom=0)
    axes[1].set_ylim(0, 1)
    for branch, (labels, scores) in pooled_curves(replays).items():
        curve = binary_curve(labels, scores)
        precision, recall, _ = curve.precision_recall()
        axes[2].step(np.concatenate([[0], recall]), np.concatenate([[1], precision]),
                     where='post', label=f'{branch} (AP {curve.average_precision():.3f})')
    axes[2].set_xlabel('recall')
    axes[2].set_ylabel('precision')
    axes[2].set_ylim(0, 1.02)
    axes[2].set_title(f"pooled over {fleet['labelled_bags']} labelled bag(s)", fontsize=10)
    axes[2].legend(fontsize=7, loc='lower left')
    buf = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buf, format='png')
    plt.close(fig)
    atomic_write_bytes(path, buf.getvalue())


def format_fleet(fleet, out):
    """Return the summary lines ``evaluate bags`` prints."""
    lines = [f"{fleet['bags']} bag(s), {fleet['frames']} frames "
             f"({fleet['duration_s'] / 60:.1f} min of driving; {fleet['replayed_now']} "
             f"replayed now with {fleet['workers']} worker(s) in {fleet['wall_s']:.0f} s, "
             f"{fleet['resumed']} resumed)"]
    for branch, part in fleet['branches'].items():
        bits = []
        frame = part.get('frame', {})
        if 'auroc' in frame:
            bits.append(f"frame AUROC {frame['auroc']:.3f} AP {frame['ap']:.3f} "
                        f"FPR95 {frame['fpr95']:.3f} ({frame['n_normal']} normal, "
                        f"{frame['n_anomalous']} anomalous frames)")
        if 'events' in part:
            ev = part['events']
            bits.append(f"{ev['detected']}/{ev['n_events']} anomalies detected, "
                        f"{ev['false_alarms_per_hour']:.1f} false alarms per hour over "
                        f"{60 * ev['normal_hours']:.1f} min of normal driving, flag on "
                        f"{100 * ev['alarm_time_fraction']:.1f}%")
        if 'pixels' in part:
            px = part['pixels']
            bits.append(f"pixel AuPRC {px['auprc']:.3f} FPR95 {px['fpr95']:.3f}")
        lines.append(f'{branch}: ' + '; '.join(bits))
    if 'monitor' in fleet:
        ev = fleet['monitor']['events']
        lines.append(f"fused flag: {ev['detected']}/{ev['n_events']} anomalies detected, "
                     f"{ev['false_alarms_per_hour']:.1f} false alarms per hour")
    lines.append(f'report and plot: {out}/{FLEET_REPORT}, {FLEET_PLOT}; replays in {out}/bags/')
    if fleet['failed']:
        lines.append(f"{len(fleet['failed'])} of {fleet['listed']} bag(s) not evaluated:")
        lines += [f"  {f['name']} ({f['bag']}): {f['cause']}" for f in fleet['failed']]
    return lines

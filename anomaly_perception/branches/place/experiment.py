"""``experiment place``: learn buildings with ``train place`` from normal runs, test on other runs.

Per building (an environment, a scene seed and a camera resolution), every
bag a run of its own: the synthetic camera's exposure, white balance, noise,
blur and compression, and the route, change from run to run as a real
camera's do from day to day.

* ``one``: ``train place`` on a single normal run (300 s at 10 Hz, run seed
  201);
* ``three``: ``train place`` on three normal runs (100 s each at 10 Hz, run
  seeds 202-204), 5 minutes in all;
* ``generic``: the shipped frame and pixel models, as they are (no place, so
  no fused flag);
* test: ``test_runs`` other runs (seeds 301 on) of ``test_seconds`` at
  10 Hz with the building's anomalies. The first test run carries only the
  thin floor hazards the frame branch never flagged (``cable`` and ``foam``,
  where the environment has them); the other runs share out the
  environment's remaining types.

Each model set runs the nodes' own pipelines on every test frame: the frame
and pixel streams (their run baselines included) and, for a place, the
hazard monitor fusing them with the place's rule (:mod:`...stream.fusion`).
Reported per building, per model set and per flag (``frame``, ``pixel``,
``fused``): events flagged (pooled over the runs and per anomaly type),
false alarms per hour of normal driving, the share of normal time the flag
is on, and the pixel AuPRC / FPR95 (mean of the runs). Every bag, place and
run's figures are kept under ``out`` and reused: an interrupted experiment
goes on where it stopped. Writes ``results.json``, ``results.md`` and
``results.png``.
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

import dataclasses
import json
from pathlib import Path
import time

import numpy as np

from .directory import load_place
from .place import PlaceConfig
from .place import train_place_from_bags
from ..pixel.place_eval import labelled_batches
from ...io.files import atomic_write_json
from ...io.files import atomic_write_text
from ...metrics.binary import BinaryScoreAccumulator
from ...metrics.events import event_metrics
from ...replay.monitor import branch_probability
from ...stream.fusion import HazardMonitor

MODELS = ('generic', 'one', 'three')
FLAGS = ('frame', 'pixel', 'fused')
THIN_TYPES = ('cable', 'foam')


@dataclasses.dataclass
class PlaceExperimentConfig:
    """The experiment's runs (defaults: the issue's protocol) and ``train place``'s options."""

    one_run_s: float = 300.0
    three_runs_s: float = 100.0
    learn_fps: float = 10.0
    test_runs: int = 5
    test_seconds: float = 200.0
    test_fps: float = 10.0
    anomaly_rate: float = 0.2
    place: PlaceConfig = dataclasses.field(default_factory=PlaceConfig)
    init_from: str = None           # the pixel model places start from (default the shipped)
    backend: str = 'auto'
    batch: int = 16
    workers: int = 2

    def learn_runs(self, model):
        """Return ``[(run seed, seconds)]`` of a place's normal runs."""
        if model == 'one':
            return [(201, self.one_run_s)]
        return [(202, self.three_runs_s), (203, self.three_runs_s), (204, self.three_runs_s)]


def types_of_test_runs(environment, runs):
    """Return each test run's anomaly types (comma-separated): thin ones first, then the rest."""
    from ...data.synthetic.catalog import ANOMALY_TYPES
    names = [t.name for t in ANOMALY_TYPES if environment in t.environments]
    thin = [n for n in names if n in THIN_TYPES]
    rest = [n for n in names if n not in THIN_TYPES]
    groups = [thin] if thin else []
    others = runs - len(groups)
    groups += [rest[k::others] for k in range(others)] if others > 0 else []
    return [','.join(g) if g else None for g in groups[:runs]]


def _render(path, building, *, seconds, fps, rate, seed, types, workers):
    from ...data.synthetic.patrol import PatrolConfig
    from ...data.synthetic.patrol import write_patrol_bag
    if not (path / 'metadata.yaml').is_file():
        write_patrol_bag(path, PatrolConfig(scene_seed=building.scene,
                                            environment=building.environment,
                                            resolution=tuple(building.resolution),
                                            seconds=seconds, fps=fps, anomaly_rate=rate,
                                            seed=seed, types=types),
                         workers=workers, overwrite=True, progress=False)
    return path


def _streams(branches, model_dirs, backend):
    streams = {}
    for branch in branches:
        cfg = branch.config()
        md = model_dirs.get(branch.name) or branch.shipped_model_dir()
        cfg = dataclasses.replace(cfg, backend=backend, model_dir=str(md))
        streams[branch.name] = branch.stream.from_config(cfg)
    return streams


def evaluate_run(bag, branches, model_dirs=None, monitor=None, *, backend='auto', batch=16):
    """Run the frame and pixel pipelines (and the fused flag) over one labelled test run.

    ``branches``: the registry's frame and pixel :class:`~..branch.Branch`
    entries; ``model_dirs``: ``{branch: model directory}`` (default the
    shipped models); ``monitor``: a place's
    :class:`~...replay.monitor.MonitorSpec`, or None (no fused flag).
    Returns ``{'frames', 'frames_per_s', 'flags': {flag: event metrics},
    'pixel': {'auprc', 'fpr95'}}``.
    """
    from ...data.synthetic.catalog import GLOBAL_TYPES
    streams = _streams(branches, dict(model_dirs or {}), backend)
    fused = None if monitor is None else HazardMonitor(monitor.config, monitor.branches,
                                                       monitor.rule)
    stamps, labels = [], []
    flags = {name: [] for name in streams}
    decided = {}
    pixels = BinaryScoreAccumulator()
    started = time.perf_counter()

    def flush(items):
        batch_stamps = [stamp for stamp, _, _, _ in items]
        images = [rgb for _, rgb, _, _ in items]
        results = {name: s.process(batch_stamps, images) for name, s in streams.items()}
        for k, (stamp, _, ids, label) in enumerate(items):
            stamps.append(stamp)
            labels.append(label)
            for name, res in results.items():
                state = res[k].state
                flags[name].append(bool(state is not None and state.flag))
                if fused is not None and name in monitor.branches:
                    for d in fused.add(name, stamp, branch_probability(name, res[k])):
                        decided[d.stamp_ns] = bool(d.state.flag)
            if 'pixel' in results and label not in GLOBAL_TYPES:
                pixels.update((ids > 0).astype(np.uint8), results['pixel'][k].pixels.anomaly)

    for items in labelled_batches(bag, batch):
        flush(items)
    seconds = time.perf_counter() - started
    stamps_arr = np.asarray(stamps, np.int64)
    out = {'frames': len(stamps), 'frames_per_s': len(stamps) / seconds if seconds else None,
           'flags': {}}
    for name, values in flags.items():
        out['flags'][name] = _events(stamps_arr, labels, values)
    if fused is not None:
        out['flags']['fused'] = _events(stamps_arr, labels,
                                        [decided.get(int(s), False) for s in stamps])
        out['frames_undecided'] = int(sum(int(s) not in decided for s in stamps))
    if 'pixel' in streams:
        curve = pixels.curve()
        out['pixel'] = {'auprc': curve.average_precision(), 'fpr95': curve.fpr_at_tpr(0.95)}
    return out


def _events(stamps, labels, flags):
    ev = event_metrics(stamps, labels, np.asarray(flags, bool))
    keep = ('n_events', 'detected', 'false_alarms', 'normal_hours', 'alarm_time_fraction')
    return {**{k: ev[k] for k in keep},
            'events': [{'type': e['label'], 'detected': e['detected']} for e in ev['events']]}


def pool(runs):
    """Pool the per-run figures of one model set: events, false alarms, alarm time, per type."""
    flags = {}
    for name in FLAGS:
        rows = [r['flags'][name] for r in runs if name in r['flags']]
        if not rows:
            continue
        hours = sum(r['normal_hours'] for r in rows)
        on_h = sum(r['alarm_time_fraction'] * r['normal_hours'] for r in rows
                   if r['normal_hours'] > 0)
        per_type = {}
        for r in rows:
            for e in r['events']:
                d, n = per_type.get(e['type'], (0, 0))
                per_type[e['type']] = (d + int(e['detected']), n + 1)
        n = sum(r['n_events'] for r in rows)
        detected = sum(r['detected'] for r in rows)
        fa = sum(r['false_alarms'] for r in rows)
        flags[name] = {'n_events': n, 'detected': detected,
                       'recall': detected / n if n else None, 'false_alarms': fa,
                       'normal_hours': hours,
                       'false_alarms_per_hour': fa / hours if hours else None,
                       'alarm_time_fraction': on_h / hours if hours else None,
                       'per_type': {k: list(v) for k, v in sorted(per_type.items())}}
    out = {'runs': len(runs), 'flags': flags}
    px = [r['pixel'] for r in runs if 'pixel' in r]
    if px:
        out['pixel'] = {k: float(np.nanmean([p[k] for p in px])) for k in ('auprc', 'fpr95')}
    return out


def _dir_mb(path):
    return sum(p.stat().st_size for p in Path(path).rglob('*') if p.is_file()) / 2 ** 20


def run_place_experiment(buildings, out, branches, config=None, *, command=None,
                         show_progress=True):
    """Run the experiment (see module docs) on ``buildings``; return and write the results.

    ``branches``: the registry's frame and pixel entries.
    """
    config = config or PlaceExperimentConfig()
    out = Path(out)
    results = {'command': command, 'config': dataclasses.asdict(config), 'buildings': {}}
    started = time.perf_counter()

    def say(text):
        if show_progress:
            print(f'[place experiment {time.perf_counter() - started:6.0f} s] {text}',
                  flush=True)

    for building in buildings:
        root = out / building.name
        tests = []
        for k, types in enumerate(types_of_test_runs(building.environment, config.test_runs)):
            seed = 301 + k
            say(f'{building.name}: test run {seed} ({types or "all types"})')
            tests.append(_render(root / 'bags' / f'test{seed}', building,
                                 seconds=config.test_seconds, fps=config.test_fps,
                                 rate=config.anomaly_rate, seed=seed, types=types,
                                 workers=config.workers))
        rows = {}
        frames_left = len(MODELS) * len(tests) * config.test_seconds * config.test_fps
        eval_rate = None
        for model in ('three', 'one', 'generic'):
            model_dirs, monitor, train = None, None, None
            if model != 'generic':
                bags = []
                for seed, seconds in config.learn_runs(model):
                    say(f'{building.name}: normal run {seed} ({seconds:g} s)')
                    bags.append(_render(root / 'bags' / f'normal{seed}', building,
                                        seconds=seconds, fps=config.learn_fps, rate=0.0,
                                        seed=seed, types=None, workers=config.workers))
                place_dir = root / f'place_{model}'
                if not (place_dir / 'manifest.yaml').is_file():
                    say(f'{building.name}: train place ({model}: {len(bags)} run(s))')
                    train_place_from_bags(bags, place_dir, root / f'work_{model}',
                                          config.place, pixel_init_from=config.init_from,
                                          overwrite=True, show_progress=show_progress,
                                          command=command)
                place = load_place(place_dir)
                model_dirs, monitor = place.model_dirs(), place.monitor_spec()
                train = {'wall_s': place.place['provenance']['wall_s']['total'],
                         'size_mb': _dir_mb(place_dir), 'runs': len(bags)}
            runs = []
            for bag in tests:
                cache = root / 'runs' / f'{model}_{bag.name}.json'
                if cache.is_file():
                    runs.append(json.loads(cache.read_text()))
                else:
                    run = evaluate_run(bag, branches, model_dirs, monitor,
                                       backend=config.backend, batch=config.batch)
                    atomic_write_json(cache, run)
                    runs.append(run)
                    eval_rate = run['frames_per_s']
                frames_left -= config.test_seconds * config.test_fps
                rate = runs[-1]['frames_per_s']
                eta = (f' at {rate:.1f} frames/s; {frames_left / eval_rate:.0f} s of tests '
                       f'left in {building.name}') if eval_rate else ''
                say(f'{building.name}: {model} on {bag.name}: {runs[-1]["frames"]} frames'
                    f'{eta}')
            rows[model] = pool(runs)
            if train:
                rows[model]['train'] = train
        results['buildings'][building.name] = {
            'building': dataclasses.asdict(building), 'rows': rows,
            'test_types': types_of_test_runs(building.environment, config.test_runs)}
        _write(out, results)
    results['pooled'] = {model: pool([{'flags': {f: _unpool(b['rows'][model]['flags'][f])
                                                 for f in b['rows'][model]['flags']}}
                                      for b in results['buildings'].values()])
                         for model in MODELS}
    _write(out, results)
    return results


def _unpool(row):
    """Turn a pooled flag row back into one 'run' row, to pool buildings together."""
    return {'n_events': row['n_events'], 'detected': row['detected'],
            'false_alarms': row['false_alarms'], 'normal_hours': row['normal_hours'],
            'alarm_time_fraction': row['alarm_time_fraction'] or 0.0,
            'events': [{'type': t, 'detected': k < d} for t, (d, n) in row['per_type'].items()
                       for k in range(n)]}


def _write(out, results):
    atomic_write_json(out / 'results.json', results)
    atomic_write_text(out / 'results.md', format_place_experiment(results))
    _plot(out / 'results.png', results)


def _cell(row):
    if row is None:
        return '—', '—', '—'
    fa = row['false_alarms_per_hour']
    on = row['alarm_time_fraction']
    return (f"{row['detected']}/{row['n_events']}",
            f"{row['false_alarms']} ({fa:.1f}/h)" if fa is not None else '—',
            f'{100 * on:.2f} %' if on is not None else '—')


def format_place_experiment(results):
    """Return the results as markdown tables."""
    lines = ['Per building: learnt with `train place` from one 300 s normal run (`one`) or '
             'three 100 s runs (`three`), or the shipped models (`generic`); tested on other '
             'runs. Events flagged, false alarms (per hour of normal driving) and the share of '
             'normal time the flag is on; pixel AuPRC / FPR95: mean of the test runs.', '']
    tables = list(results['buildings'].items())
    if 'pooled' in results:
        tables.append(('all buildings', {'rows': results['pooled']}))
    for name, b in tables:
        rows = b['rows']
        lines += [f'**{name}**', '',
                  '| model | flag | events | false alarms | flag on | pixel AuPRC | FPR95 | '
                  'train place |', '|---|---|---|---|---|---|---|---|']
        for model in MODELS:
            if model not in rows:
                continue
            row = rows[model]
            px = row.get('pixel', {})
            train = row.get('train')
            for flag in FLAGS:
                ev, fa, on = _cell(row['flags'].get(flag))
                pxs = (f"{px['auprc']:.3f}", f"{px['fpr95']:.3f}") if px and flag == 'pixel' \
                    else ('', '')
                tr = (f"{train['wall_s']:.0f} s, {train['size_mb']:.1f} MB"
                      if train and flag == 'fused' else '')
                lines.append(f'| {model} | {flag} | {ev} | {fa} | {on} | {pxs[0]} | {pxs[1]} '
                             f'| {tr} |')
        lines.append('')
        types = sorted({t for row in rows.values() for f in row['flags'].values()
                        for t in f['per_type']})
        if types:
            cols = [(m, f) for m in MODELS if m in rows for f in FLAGS
                    if f in rows[m]['flags']]
            lines += ['| type | ' + ' | '.join(f'{m} {f}' for m, f in cols) + ' |',
                      '|---|' + '---|' * len(cols)]
            for t in types:
                cells = []
                for m, f in cols:
                    d, n = rows[m]['flags'][f]['per_type'].get(t, (0, 0))
                    cells.append(f'{d}/{n}' if n else '—')
                lines.append(f'| {t} | ' + ' | '.join(cells) + ' |')
            lines.append('')
    return '\n'.join(lines) + '\n'


def _plot(path, results):
    import matplotlib
    matplotlib.use('Agg', force=True)
    import matplotlib.pyplot as plt

    from ...metrics.plots import _save
    names = list(results['buildings'])
    if not names:
        return
    shown = [b['rows'] for b in results['buildings'].values()]
    bars = [(m, f) for m in MODELS for f in FLAGS
            if any(f in rows.get(m, {}).get('flags', {}) for rows in shown)]
    fig, (*axes, side) = plt.subplots(1, 4, figsize=(15, 3.8),
                                      gridspec_kw={'width_ratios': (1, 1, 1, 0.3)})
    width = 0.8 / len(bars)
    colors = plt.get_cmap('tab10')
    for k, (model, flag) in enumerate(bars):
        vals = {'recall': [], 'fah': [], 'on': []}
        for name in names:
            row = results['buildings'][name]['rows'].get(model, {}).get('flags', {}).get(flag)
            vals['recall'].append(np.nan if row is None or row['recall'] is None
                                  else 100 * row['recall'])
            vals['fah'].append(np.nan if row is None or row['false_alarms_per_hour'] is None
                               else row['false_alarms_per_hour'])
            vals['on'].append(np.nan if row is None or row['alarm_time_fraction'] is None
                              else 100 * row['alarm_time_fraction'])
        x = np.arange(len(names)) + k * width
        hatch = {'frame': '', 'pixel': '//', 'fused': 'xx'}[flag]
        for ax, key in zip(axes, ('recall', 'fah', 'on')):
            ax.bar(x, vals[key], width, color=colors(MODELS.index(model)), hatch=hatch,
                   label=f'{model} {flag}', edgecolor='white')
    titles = ('events flagged, % (target >= 90)', 'false alarms per hour (target <= 2)',
              'flag on, % of normal time (target <= 1)')
    for ax, title, target in zip(axes, titles, (90, 2, 1)):
        ax.set_xticks(np.arange(len(names)) + width * (len(bars) - 1) / 2)
        ax.set_xticklabels(names, rotation=10, fontsize=8)
        ax.set_title(title, fontsize=9)
        ax.axhline(target, color='k', lw=0.8, ls='--')
    axes[1].set_yscale('symlog', linthresh=2)
    axes[2].set_yscale('symlog', linthresh=1)
    side.axis('off')
    side.legend(*axes[0].get_legend_handles_labels(), fontsize=7, loc='center left',
                frameon=False)
    _save(plt, fig, path)

"""``experiment learn-place``: learn a building from one normal patrol, test on another.

Per scene seed (a synthetic building):

* ``normal``: a 300 s normal patrol at 10 Hz (patrol seed 101), to learn from;
* ``test``: a 120 s patrol with anomalies at 30 Hz (patrol seed 31337);
* ``tagged``: a 120 s patrol with anomalies at 10 Hz (patrol seed 202), whose
  labelled anomalies play the operator's tags for few-shot outlier exposure.

``train frame --bag normal`` (no exposure, then 2, 8, 32 tagged frames),
each replayed on ``test``; the shipped generic model on ``test`` for
reference. Writes ``results.json``, ``results.md`` and ``results.png``.
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

from ...io.bags import BagReader
from ...io.files import atomic_write_json
from ...io.files import atomic_write_text
from ...metrics.events import label_events
from ...replay.engine import replay
from ...replay.tagging import write_intervals

PATROLS = {'normal': {'seconds': 300.0, 'fps': 10.0, 'anomaly_rate': 0.0, 'seed': 101},
           'test': {'seconds': 120.0, 'fps': 30.0, 'seed': 31337},
           'tagged': {'seconds': 120.0, 'fps': 10.0, 'seed': 202}}


def _bag(root, name, scene, workers):
    from ...data.synthetic.patrol import PatrolConfig
    from ...data.synthetic.patrol import write_patrol_bag
    path = Path(root) / name
    if not (path / 'metadata.yaml').is_file():
        write_patrol_bag(path, PatrolConfig(scene_seed=scene, **PATROLS[name]),
                         workers=workers, overwrite=True, progress=False)
    return path


def tags_from_labels(bag, out):
    """Write the labelled anomalies of ``bag`` (its label topic) as an intervals file."""
    with BagReader(bag) as reader:
        label_topic = next(t for t in reader.topics if t.endswith('/labels/frame'))
        pairs = sorted((m.header.stamp.sec * 10**9 + m.header.stamp.nanosec,
                        m.results[0].class_id if m.results else 'normal')
                       for _, _, m in reader.messages([label_topic]))
    stamps = np.array([p[0] for p in pairs], np.int64)
    labels = [p[1] for p in pairs]
    half = float(np.median(np.diff(stamps))) / 2
    intervals = []
    for ev in label_events(stamps, labels):
        start = max(0.0, (ev.start_ns - stamps[0] - half) / 1e9)
        end = min((stamps[-1] - stamps[0]) / 1e9, (ev.end_ns - stamps[0] + half) / 1e9)
        intervals.append((start, end, ev.label, 'from the label topic'))
    write_intervals(out, intervals, ['Anomalies of the label topic, as an operator would tag '
                                     'them.'])
    return out


def centre_visibility(bag):
    """Return ``{stamp: (label, share inside the centre square)}`` per anomalous frame.

    The share is that of the frame's anomaly pixels (instance-mask topic)
    inside the centred square crop; NaN for global anomalies such as
    darkness, which have no pixels.
    """
    from ...io.images import image_to_numpy
    out = {}
    with BagReader(bag) as reader:
        topics = list(reader.topics)
        label_topic = next(t for t in topics if t.endswith('/labels/frame'))
        mask_topic = next(t for t in topics if t.endswith('/labels/instances'))
        labels = {m.header.stamp.sec * 10**9 + m.header.stamp.nanosec:
                  m.results[0].class_id if m.results else 'normal'
                  for _, _, m in reader.messages([label_topic])}
        for _, _, m in reader.messages([mask_topic]):
            stamp = m.header.stamp.sec * 10**9 + m.header.stamp.nanosec
            label = labels.get(stamp, 'normal')
            if label == 'normal':
                continue
            mask = np.asarray(image_to_numpy(m)).reshape(m.height, m.width, -1)[..., 0] > 0
            x0 = (m.width - m.height) // 2
            total = int(mask.sum())
            inside = int(mask[:, x0:x0 + m.height].sum())
            out[stamp] = (label, inside / total if total else float('nan'))
    return out


def replay_scores(replay_dir):
    """``{stamp: raw score}`` from a replay's output bag."""
    out = {}
    with BagReader(Path(replay_dir) / 'outputs') as reader:
        topic = next(t for t in reader.topics if t.endswith('/frame_anomaly/score'))
        for _, _, m in reader.messages([topic]):
            raw = {h.class_id: h.score for h in m.results}.get('raw_score', float('inf'))
            out[m.header.stamp.sec * 10**9 + m.header.stamp.nanosec] = raw
    return out


def side_of_frame(test_bag, replays):
    """AUROC of each replay's scores on local anomalies by their share inside the centre square.

    ``replays``: ``{name: replay_dir}``. Normal frames are the same for every
    bin; anomalous frames are binned by the share of their anomaly pixels
    inside the centre square (what a square-cropping model can see).
    """
    from ...metrics.binary import binary_curve
    visibility = centre_visibility(test_bag)
    bins = {'mostly outside (<50% inside)': (0.0, 0.5), 'mostly inside (>=50%)': (0.5, 1.01)}
    result = {'frames': {}, 'auroc': {}}
    for name, replay_dir in replays.items():
        scores = replay_scores(replay_dir)
        normal = np.array([v for k, v in scores.items() if k not in visibility])
        result['auroc'][name] = {}
        for bin_name, (lo, hi) in bins.items():
            anomalous = np.array([scores[k] for k, (_, share) in visibility.items()
                                  if k in scores and lo <= share < hi])
            result['frames'][bin_name] = int(len(anomalous))
            if len(anomalous) and len(normal):
                labels = np.r_[np.zeros(len(normal), bool), np.ones(len(anomalous), bool)]
                result['auroc'][name][bin_name] = binary_curve(
                    labels, np.r_[normal, anomalous]).auroc()
    return result


def _row(replayed, manifest=None):
    report = replayed['branches']['frame']
    ev = report['events']
    row = {'auroc': report['auroc'], 'ap': report['ap'],
           'per_type_auroc': report['per_type_auroc'],
           'events_detected': ev['detected'], 'events': ev['n_events'],
           'event_recall': ev['detected'] / ev['n_events'] if ev['n_events'] else float('nan'),
           'false_alarms': ev['false_alarms'],
           'false_alarms_per_hour': ev['false_alarms_per_hour'],
           'alarm_time_fraction': ev['alarm_time_fraction'],
           'on_probability': report['hazard']['on_probability'],
           'detected_types': [e['label'] for e in ev['events'] if e['detected']],
           'missed_types': [e['label'] for e in ev['events'] if not e['detected']],
           'realtime_factor': replayed['realtime_factor']}
    if manifest is not None:
        t = manifest['provenance']['training']
        row['train_wall_s'] = t['wall_s']
        row['frame_extraction_fps'] = t['frame_extraction_fps']
    return row


def run_learn_place(frame_branch, scene_seeds, out, exposures=(0, 2, 8, 32), workers=2,
                    config=None, show_progress=True, square=False):
    """Run the experiment of the module docs; return the results dict (also written).

    ``frame_branch``: the frame branch's registry entry, which replay runs.
    """
    from .train_bags import BagTrainingConfig
    from .train_bags import ExposedSource
    from .train_bags import train_frame_from_bags
    out = Path(out)
    config = config or BagTrainingConfig()
    results = {'patrols': PATROLS, 'exposures': list(exposures), 'scenes': {}}
    for scene in scene_seeds:
        root = out / f'scene_{scene}'
        started = time.perf_counter()
        bags = {name: _bag(root / 'bags', name, scene, workers) for name in PATROLS}
        tags = tags_from_labels(bags['tagged'], root / 'tagged_intervals.yaml')
        rows = {'shipped': _row(replay(bags['test'], root / 'replay_shipped', [frame_branch],
                                       backend='auto', overwrite=True,
                                       show_progress=False))}
        for count in exposures:
            name = 'learnt' if count == 0 else f'learnt_oe{count}'
            exposed = [] if count == 0 else [ExposedSource(str(bags['tagged']), str(tags))]
            cfg = dataclasses.replace(config, exposed_count=count if count else 'all')
            manifest = train_frame_from_bags([bags['normal']], root / name, root / 'work', cfg,
                                             exposed=exposed, overwrite=True,
                                             show_progress=show_progress)
            report = replay(bags['test'], root / f'replay_{name}', [frame_branch],
                            model_dir=root / name,
                            backend='auto', overwrite=True, show_progress=False)
            rows[name] = _row(report, manifest)
            print(f'scene {scene} {name:12s} ' + _summary(rows[name]), flush=True)
        if square:
            # The same training on the centre square only (what frames saw before 64x112).
            cfg = dataclasses.replace(config, autoencoder=dataclasses.replace(
                config.autoencoder, input_size=[64, 64]))
            manifest = train_frame_from_bags([bags['normal']], root / 'learnt_square',
                                             root / 'work_square', cfg, overwrite=True,
                                             show_progress=show_progress)
            report = replay(bags['test'], root / 'replay_learnt_square', [frame_branch],
                            model_dir=root / 'learnt_square', backend='auto', overwrite=True,
                            show_progress=False)
            rows['learnt_square'] = _row(report, manifest)
            print(f'scene {scene} learnt_square ' + _summary(rows['learnt_square']), flush=True)
            rows['side_of_frame'] = side_of_frame(bags['test'], {
                'learnt': root / 'replay_learnt', 'learnt_square': root / 'replay_learnt_square'})
        rows['wall_s'] = time.perf_counter() - started
        results['scenes'][str(scene)] = rows
        atomic_write_json(out / 'results.json', json.loads(json.dumps(results, default=float)))
    atomic_write_text(out / 'results.md', format_learn_place(results))
    _plot(out / 'results.png', results)
    return results


def _summary(row):
    return (f"AUROC {row['auroc']:.3f}  events {row['events_detected']}/{row['events']}  "
            f"FA {row['false_alarms']} ({row['false_alarms_per_hour']:.1f}/h)  alarm time "
            f"{100 * row['alarm_time_fraction']:.2f}%")


def _names(results):
    names = ['shipped'] + ['learnt' if c == 0 else f'learnt_oe{c}'
                           for c in results['exposures']]
    if any('learnt_square' in rows for rows in results['scenes'].values()):
        names.append('learnt_square')
    return names


def format_learn_place(results):
    """Markdown tables: per scene and model, and the few-shot means."""
    lines = ['| scene | model | AUROC | events flagged | false alarms/h | alarm time (normal) '
             '| missed |', '|---|---|---|---|---|---|---|']
    names = _names(results)
    for scene, rows in results['scenes'].items():
        for name in names:
            r = rows.get(name)
            if r is None:
                continue
            lines.append(f"| {scene} | {name} | {r['auroc']:.3f} | {r['events_detected']}/"
                         f"{r['events']} | {r['false_alarms_per_hour']:.1f} | "
                         f"{100 * r['alarm_time_fraction']:.2f}% | "
                         f"{', '.join(r['missed_types']) or '-'} |")
    lines += ['', '| model | mean AUROC | events flagged | mean false alarms/h | '
              'mean alarm time |', '|---|---|---|---|---|']
    for name in names:
        rs = [rows[name] for rows in results['scenes'].values() if name in rows]
        if not rs:
            continue
        lines.append(f"| {name} | {np.mean([r['auroc'] for r in rs]):.3f} | "
                     f"{sum(r['events_detected'] for r in rs)}/{sum(r['events'] for r in rs)} | "
                     f"{np.mean([r['false_alarms_per_hour'] for r in rs]):.1f} | "
                     f"{100 * np.mean([r['alarm_time_fraction'] for r in rs]):.2f}% |")
    sides = {scene: rows['side_of_frame'] for scene, rows in results['scenes'].items()
             if 'side_of_frame' in rows}
    if sides:
        lines += ['', '| scene | anomalous frames (local anomalies) | frames | learnt 64x112 '
                  'AUROC | learnt_square 64x64 AUROC |', '|---|---|---|---|---|']
        for scene, side in sides.items():
            for bin_name, count in side['frames'].items():
                a = side['auroc'].get('learnt', {}).get(bin_name, float('nan'))
                b = side['auroc'].get('learnt_square', {}).get(bin_name, float('nan'))
                lines.append(f'| {scene} | {bin_name} | {count} | {a:.3f} | {b:.3f} |')
    return '\n'.join(lines) + '\n'


def _plot(path, results):
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    names = _names(results)
    scenes = list(results['scenes'])
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.6))
    width = 0.8 / max(len(scenes), 1)
    for k, scene in enumerate(scenes):
        rows = results['scenes'][scene]
        x = np.arange(len(names)) + k * width
        for ax, key, scale in zip(axes, ('auroc', 'false_alarms_per_hour',
                                         'alarm_time_fraction'), (1, 1, 100)):
            ax.bar(x, [rows[n][key] * scale if n in rows else np.nan for n in names], width,
                   label=f'scene {scene}')
    for ax, title in zip(axes, ('frame AUROC', 'false alarms per hour',
                                '% of normal driving under alarm')):
        ax.set_xticks(np.arange(len(names)) + width * (len(scenes) - 1) / 2)
        ax.set_xticklabels(names, rotation=20, fontsize=8)
        ax.set_title(title, fontsize=10)
    axes[0].axhline(0.9, color='k', lw=0.6, ls='--')
    axes[1].axhline(6, color='k', lw=0.6, ls='--')
    axes[2].axhline(2, color='k', lw=0.6, ls='--')
    axes[0].legend(fontsize=7)
    fig.tight_layout()
    tmp = Path(path).with_suffix('.tmp.png')
    fig.savefig(tmp, dpi=110)
    plt.close(fig)
    tmp.replace(path)

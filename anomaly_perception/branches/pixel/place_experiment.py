"""``experiment pixel-place``: learn buildings from their normal bags, score patrols of other runs.

Per building (an environment, a scene seed and a camera resolution):

* ``normal``: a 300 s normal patrol at 10 Hz (patrol seed 101), the place's
  unlabelled normal driving, to learn from;
* ``test``: a 120 s patrol of another run (patrol seed 31337) with the
  world's in-scene anomalies, rendered by the world's ray caster; the
  pasted cut-outs of training are never these (see :mod:`.paste`).

Rows, scored on the same test frames by :func:`~.place_eval.evaluate_bag`:

* ``generic``: the shipped pixel model as it is;
* ``place``: ``train pixel --bag normal`` (:mod:`.place`);
* ``peer``: a peer method trained on the same place frames
  (:mod:`.peer`: anomalib's DRAEM), when its extra is installed.

Pixel AuPRC and FPR95 over the local anomalies (whole-image effects such as
mist and darkness have no pixels), per anomaly type (the frames of that
type), the share of pixels of normal frames above each model's threshold,
and the node's hazard flag (:class:`~.stream.PixelStream`, the node's
default filter) false alarms per hour and event recall.
Writes ``results.json``, ``results.md``, ``results.png`` (bars per
building) and ``overlays_<building>.jpg`` (test frames, both models).
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

from .place_eval import evaluate_bag
from .place_eval import stream_scorer
from .place_eval import write_overlays
from .stream import PixelStream
from ...io.bags import BagReader
from ...io.files import atomic_write_bytes
from ...io.files import atomic_write_json
from ...io.files import atomic_write_text
from ...io.labels import FRAME_LABELS_SUFFIX
from ...io.labels import label_topic

PATROLS = {'normal': {'seconds': 300.0, 'fps': 10.0, 'anomaly_rate': 0.0, 'seed': 101},
           'test': {'seconds': 120.0, 'fps': 10.0, 'seed': 31337}}


@dataclasses.dataclass(frozen=True)
class Building:
    """A synthetic building: an environment, its scene seed and the robot's camera."""

    environment: str
    scene: int
    resolution: tuple = (640, 360)

    @property
    def name(self):
        w, h = self.resolution
        return f'{self.environment}_{self.scene}_{w}x{h}'

    @classmethod
    def parse(cls, text):
        """``ENV:SCENE[:WxH]``, e.g. ``factory:37:640x480``."""
        parts = text.split(':')
        if len(parts) not in (2, 3):
            raise ValueError(f'{text!r}: expected ENV:SCENE[:WxH].')
        res = tuple(int(v) for v in parts[2].lower().split('x')) if len(parts) == 3 \
            else (640, 360)
        return cls(parts[0], int(parts[1]), res)


def patrol_bag(root, name, building, workers=2):
    """Render (once) the ``name`` patrol of ``building`` under ``root``; return its path."""
    from ...data.synthetic.patrol import PatrolConfig
    from ...data.synthetic.patrol import write_patrol_bag
    path = Path(root) / name
    if not (path / 'metadata.yaml').is_file():
        write_patrol_bag(path, PatrolConfig(scene_seed=building.scene,
                                            environment=building.environment,
                                            resolution=tuple(building.resolution),
                                            **PATROLS[name]),
                         workers=workers, overwrite=True, progress=False)
    return path


def _example_stamps(bag, count=6):
    """Stamps of ``count`` test frames: anomalies of different types, and one normal frame."""
    chosen, seen, normal = [], set(), None
    with BagReader(bag) as reader:
        topic = label_topic(reader.find_image_topic(), FRAME_LABELS_SUFFIX)
        for _, _, m in reader.messages([topic]):
            label = m.results[0].class_id if m.results else 'normal'
            stamp = m.header.stamp.sec * 10**9 + m.header.stamp.nanosec
            if label == 'normal':
                normal = normal or stamp
            elif label not in seen and len(chosen) < count - 1:
                seen.add(label)
                chosen.append(stamp)
    return chosen + ([normal] if normal else [])


def run_pixel_place(buildings, out, *, config=None, peer=True, workers=2, show_progress=True,
                    real_frames=None):
    """Run the experiment of the module docs; return the results (also written)."""
    from .config import PixelNodeConfig
    from .place import PlaceTrainingConfig
    from .place import train_pixel_from_bags
    from ...runtime.manifest import shipped_model_dir
    from . import SHIPPED_MODEL
    out = Path(out)
    config = config or PlaceTrainingConfig()
    node = PixelNodeConfig(backend='torch')
    results = {'patrols': PATROLS, 'config': dataclasses.asdict(config), 'buildings': {}}
    for building in buildings:
        root = out / building.name
        started = time.perf_counter()
        bags = {name: patrol_bag(root / 'bags', name, building, workers) for name in PATROLS}
        render_s = time.perf_counter() - started
        manifest = train_pixel_from_bags([bags['normal']], root / 'place', root / 'work', config,
                                         overwrite=True, show_progress=show_progress)
        keep = set(_example_stamps(bags['test']))
        rows, examples = {}, {}
        for name, model in (('generic', shipped_model_dir(SHIPPED_MODEL)),
                            ('place', root / 'place')):
            # A fresh pipeline per patrol, as a node started for it: the hazard flag starts clear.
            stream = PixelStream.from_config(node, model_dir=model)
            rows[name], examples[name] = evaluate_bag(bags['test'], stream_scorer(stream),
                                                      keep_examples=keep)
        rows['place']['train_wall_s'] = manifest['provenance']['total_wall_s']
        rows['place']['held_out_pasted'] = manifest['metrics']['held_out']
        if peer:
            from .peer import peer_row
            rows['peer'], examples['peer'] = peer_row(bags, root / 'peer', keep, show_progress)
        results['buildings'][building.name] = {'rows': rows, 'render_s': render_s,
                                               'wall_s': time.perf_counter() - started}
        _write_overlays(out / f'overlays_{building.name}.jpg', examples)
        for name, row in rows.items():
            if 'auprc' in row:
                print(f'{building.name} {name:8s} ' + _summary(row), flush=True)
        atomic_write_json(out / 'results.json', json.loads(json.dumps(results, default=float)))
    if real_frames:
        from .place_real import run_real_frames
        results['real_frames'] = run_real_frames(real_frames, out / 'real', config,
                                                 show_progress=show_progress)
        atomic_write_json(out / 'results.json', json.loads(json.dumps(results, default=float)))
    atomic_write_text(out / 'results.md', format_pixel_place(results))
    _plot(out / 'results.png', results)
    return results


def _write_overlays(path, examples):
    names = list(examples)
    stamps = sorted(set.intersection(*(set(examples[n]) for n in names))) if names else []
    rows = []
    for stamp in stamps:
        rgb = examples[names[0]][stamp][0]
        maps = []
        for n in names:
            _, amap, mask = examples[n][stamp]
            lo, hi = float(np.quantile(amap, 0.5)), float(np.quantile(amap, 0.999))
            maps.append((amap, mask, (lo, hi)))
        rows.append((rgb, maps))
    write_overlays(path, rows)


def _summary(row):
    line = f"pixel AuPRC {row['auprc']:.3f}  FPR95 {row['fpr95']:.3f}"
    if 'normal_pixels_flagged' in row:
        line += f"  normal pixels flagged {100 * row['normal_pixels_flagged']:.2f} %"
    if 'events' in row:
        ev = row['events']
        line += (f"  flag {ev['detected']}/{ev['n_events']} events, "
                 f"{ev['false_alarms_per_hour']:.0f} false alarms/h")
    return line


def format_pixel_place(results):
    """Format the results as Markdown tables."""
    lines = ['# experiment pixel-place', '',
             'Pixel AuPRC / FPR95 on the local anomalies of a patrol of another run '
             '(patrol seed 31337) of each building, after learning it from a 300 s normal '
             'patrol (seed 101). Flagged: mean share of the pixels of normal test frames '
             "above the model's threshold. False alarms: episodes of the node's hazard flag "
             "(`~/hazard`, its default smoothing; a place model's level set for 2 false "
             "alarms/h on its held-out blocks, the generic model's at 0.99) on normal "
             'driving.', '',
             '| building | model | AuPRC | FPR95 | flagged | flag events | false alarms/h | '
             'fps |', '|---|---|---|---|---|---|---|---|']
    types = set()
    for name, b in results['buildings'].items():
        for row_name, row in b['rows'].items():
            if 'auprc' not in row:
                lines.append(f'| {name} | {row_name} | {row.get("error", "not run")} |'
                             ' | | | | |')
                continue
            types |= set(row['per_type'])
            ev = row.get('events')
            flagged = f"{100 * row['normal_pixels_flagged']:.2f} %" \
                if 'normal_pixels_flagged' in row else '-'
            lines.append(f"| {name} | {row_name} | {row['auprc']:.3f} | {row['fpr95']:.3f} | "
                         f'{flagged} | '
                         + (f"{ev['detected']}/{ev['n_events']} | "
                            f"{ev['false_alarms_per_hour']:.0f} | " if ev else '- | - | ')
                         + f"{row['frames_per_s']:.1f} |")
    rows = [(b, r) for b, v in results['buildings'].items() for r in v['rows']
            if 'per_type' in v['rows'][r]]
    if rows:
        lines += ['', '## Pixel AuPRC per anomaly type', '',
                  '| type | ' + ' | '.join(f'{b} {r}' for b, r in rows) + ' |',
                  '|---|' + '---|' * len(rows)]
        for t in sorted(types):
            cells = []
            for b, r in rows:
                v = results['buildings'][b]['rows'][r]['per_type'].get(t)
                cells.append(f"{v['auprc']:.3f}" if v else '')
            lines.append(f'| {t} | ' + ' | '.join(cells) + ' |')
    timing = [(b, v['rows']) for b, v in results['buildings'].items()]
    lines += ['', '## Training', '', '| building | model | train wall (s) | scoring frames/s |',
              '|---|---|---|---|']
    for b, rows_ in timing:
        for r, row in rows_.items():
            if 'train_wall_s' in row:
                lines.append(f"| {b} | {r} | {row['train_wall_s']:.0f} | "
                             f"{row.get('frames_per_s', float('nan')):.1f} |")
    if 'real_frames' in results:
        from .place_real import format_real_frames
        lines += ['', *format_real_frames(results['real_frames'])]
    return '\n'.join(lines) + '\n'


def _plot(path, results):
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    names = list(results['buildings'])
    if not names:
        return
    models = sorted({m for b in results['buildings'].values() for m in b['rows']
                     if 'auprc' in b['rows'][m]}, key=['generic', 'place', 'peer'].index)
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.8))
    width = 0.8 / max(1, len(models))
    for k, model in enumerate(models):
        for ax, key in zip(axes, ('auprc', 'fpr95')):
            values = [results['buildings'][b]['rows'].get(model, {}).get(key, np.nan)
                      for b in names]
            ax.bar(np.arange(len(names)) + k * width, values, width, label=model)
    for ax, title in zip(axes, ('pixel AuPRC (higher is better)', 'FPR95 (lower is better)')):
        ax.set_xticks(np.arange(len(names)) + width * (len(models) - 1) / 2)
        ax.set_xticklabels(names, rotation=15, fontsize=8)
        ax.set_title(title)
        ax.set_ylim(0, 1)
    axes[0].legend()
    fig.tight_layout()
    import io
    buf = io.BytesIO()
    fig.savefig(buf, format='png', dpi=110)
    plt.close(fig)
    atomic_write_bytes(path, buf.getvalue())

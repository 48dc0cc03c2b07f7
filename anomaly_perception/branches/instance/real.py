"""``experiment real-instances``: instances per real camera frame, with and without a place.

A folder of real frames named as ``experiment pixel-place --real`` reads
them (``<place>_normal<n>.jpg`` for normal driving, ``<place>_<hazard>.jpg``
for the rest). Each place is learnt from its normal frames
(:func:`~..pixel.place_real.learn_from_frames`: augmented views, the
same steps), once from all of them and once per left-out normal frame.
Every instance design then runs with the node's defaults on the generic
pixel model's map and on the place's:

* **generic**: the shipped pixel model, every frame;
* **place**: the place learnt from all its normal frames, every frame of it;
* **left out**: each normal frame, under the place learnt without it.

Writes ``real_instances.json`` (instances and covered share per frame),
``real_instances.md`` (means per row) and ``real_instances.jpg`` (the
default design on every frame under its place).
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
from pathlib import Path

import numpy as np

from .experiments import contact_sheet
from ...errors import AnomalyPerceptionError
from ...io.files import atomic_write_json
from ...io.files import atomic_write_text


def _segmenter(pixel_dir, model):
    from .config import InstanceNodeConfig
    from .detector import InstanceAnomalySegmenter
    return InstanceAnomalySegmenter.from_config(
        InstanceNodeConfig(pixel_model_dir=str(pixel_dir)), model)


def run_real_instances(folder, out_dir, designs, config=None, *, steps=None, train_views=240,
                       cal_views=80, show_progress=True):
    """Run the module's measurement for each ``{name: promptable dir or 'components'}``."""
    from ..pixel.paste import CutoutBank
    from ..pixel.place import PlaceTrainingConfig
    from ..pixel.place_real import learn_from_frames
    from ..pixel.place_real import read_places
    from ..pixel.place_real import REAL_STEPS
    from ...runtime.manifest import shipped_model_dir
    from ..pixel import SHIPPED_MODEL as PIXEL_MODEL
    out = Path(out_dir)
    config = dataclasses.replace(config or PlaceTrainingConfig(), steps=steps or REAL_STEPS)
    try:
        places = {p: f for p, f in read_places(folder).items() if f['normal']}
    except AnomalyPerceptionError:          # no image at all
        places = {}
    if not places:
        raise AnomalyPerceptionError(f'{str(folder)!r} has no <place>_normal<n> frames.')
    generic = shipped_model_dir(PIXEL_MODEL)
    bank = CutoutBank(config.sources)

    def learn(name, frames):
        model = out / 'places' / name
        learn_from_frames(frames, model, out / 'work' / name, config, start_dir=generic,
                          bank=bank, train_views=train_views, cal_views=cal_views)
        if show_progress:
            print(f'learnt {name} from {len(frames)} frames', flush=True)
        return model

    runs = []               # (row, pixel model, [(name, kind, rgb)])
    for place, frames in sorted(places.items()):
        every = [(n, 'normal', f) for n, f in frames['normal']] + \
            [(n, 'hazard', f) for n, f in frames['hazard']]
        runs.append(('generic', generic, every))
        runs.append(('place', learn(f'{place}_all', [f for _, f in frames['normal']]), every))
        if len(frames['normal']) >= 2:
            for k, (name, rgb) in enumerate(frames['normal']):
                rest = [f for j, (_, f) in enumerate(frames['normal']) if j != k]
                runs.append(('left_out', learn(f'{place}_without_{name}', rest),
                             [(name, 'normal', rgb)]))
    report = {'steps': config.steps, 'designs': dict(designs), 'frames': {}, 'rows': {}}
    sheet = []
    for design, model in designs.items():
        for row, pixel_dir, frames in runs:
            seg = _segmenter(pixel_dir, model)
            for name, kind, rgb in frames:
                r = seg.segment(rgb)
                report['frames'][f'{design}|{row}|{name}'] = {
                    'kind': kind, 'instances': len(r.scores),
                    'covered': float((r.ids > 0).mean())}
                if design == next(iter(designs)) and row == 'place':
                    sheet.append((rgb, r.anomaly, np.zeros(r.ids.shape, bool),
                                  [r.ids == k + 1 for k in range(len(r.scores))], r.points))
    for key, v in report['frames'].items():
        design, row, _ = key.split('|')
        agg = report['rows'].setdefault(f"{design}|{row}|{v['kind']}",
                                        {'counts': [], 'covered': []})
        agg['counts'].append(v['instances'])
        agg['covered'].append(v['covered'])
    for agg in report['rows'].values():
        agg.update(frames=len(agg['counts']), mean=float(np.mean(agg['counts'])),
                   max=int(np.max(agg['counts'])), covered=float(np.mean(agg['covered'])))
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_json(out / 'real_instances.json', report)
    atomic_write_text(out / 'real_instances.md', format_real_instances(report) + '\n')
    if sheet:
        contact_sheet(out / 'real_instances.jpg', sheet, width=256)
    return report


def format_real_instances(report):
    """Return the Markdown table of :func:`run_real_instances`'s report."""
    lines = [f"Instances per real frame, the node's defaults; places learnt in "
             f"{report['steps']} steps.", '',
             '| design | pixel map | kind | frames | mean instances | max | mean share covered |',
             '|---|---|---|---:|---:|---:|---:|']
    for key, r in report['rows'].items():
        design, row, kind = key.split('|')
        lines.append(f"| {design} | {row.replace('_', ' ')} | {kind} | {r['frames']} | "
                     f"{r['mean']:.2f} | {r['max']} | {100 * r['covered']:.2f} % |")
    return '\n'.join(lines)

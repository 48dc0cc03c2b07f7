"""``synth compare``: real reference frames next to synthetic frames of the same kind.

Reference files are named ``<environment>_<type><n>.jpg`` (the naming of the
Robomaster patrol frames: ``corridor_cable.jpg``, ``factory_normal1.jpg``,
``tunnel_root1.jpg``). For each, a synthetic frame of that environment and
anomaly type is rendered and the two are put side by side. The output is
meant for a build folder: real frames must not enter the repository.
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

from pathlib import Path
import re

import cv2
import numpy as np

from .catalog import ENVIRONMENTS
from .catalog import TYPES_BY_NAME
from .dataset import _seed_int
from .world import Sequence
from .world import SequenceSpec
from ...errors import AnomalyPerceptionError
from ...io.files import atomic_write_bytes

#: Reference-file words that name our types differently.
ALIASES = {'box': 'boxes', 'root': 'roots', 'normal': None}
TILE = 256


def parse_reference_name(path):
    """``(environment, type name or None)`` from a reference file name, or None."""
    stem = Path(path).stem.lower()
    env, _, rest = stem.partition('_')
    if env not in ENVIRONMENTS or not rest:
        return None
    word = re.sub(r'\d+$', '', rest)
    if word in ALIASES:
        return env, ALIASES[word]
    if word in TYPES_BY_NAME and env in TYPES_BY_NAME[word].environments:
        return env, word
    return None


def synthetic_like(environment, type_name, seed, size=512):
    """Render one synthetic frame of ``environment`` showing ``type_name`` (None: normal)."""
    spec = SequenceSpec(seed=_seed_int(seed, 71), environment=environment,
                        scene_seed=_seed_int(seed, 72), anomaly=type_name, duration_s=15.0)
    seq = Sequence(spec)
    rng = np.random.default_rng(_seed_int(seed, 73))
    best = None
    for t in seq.candidate_times(rng, 6):
        frame = seq.frame(float(t), size, size)
        if best is None or frame.label > 0 and frame.mask.sum() > best.mask.sum():
            best = frame
        if type_name is None or frame.is_global:
            break
    return best.image


def _caption(tile, text):
    cv2.rectangle(tile, (0, 0), (TILE, 18), (0, 0, 0), -1)
    cv2.putText(tile, text, (4, 13), cv2.FONT_HERSHEY_SIMPLEX, 0.42, (255, 255, 255), 1,
                cv2.LINE_AA)
    return tile


def write_comparison(reference_dir, out, seed=0, pairs_per_row=2):
    """Write the side-by-side PNG; return ``(path, number of pairs)``."""
    reference_dir = Path(reference_dir)
    files = sorted(p for p in reference_dir.glob('*') if p.suffix.lower() in ('.jpg', '.png'))
    rows = []
    for k, path in enumerate(files):
        kind = parse_reference_name(path)
        if kind is None:
            continue
        real = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if real is None:
            raise AnomalyPerceptionError(f'Cannot read reference image {str(path)!r}.')
        env, type_name = kind
        synth = synthetic_like(env, type_name, _seed_int(seed, k))
        label = type_name or 'normal'
        left = _caption(cv2.resize(real, (TILE, TILE), interpolation=cv2.INTER_AREA),
                        f'real: {path.stem}')
        right = _caption(cv2.resize(cv2.cvtColor(synth, cv2.COLOR_RGB2BGR), (TILE, TILE),
                                    interpolation=cv2.INTER_AREA),
                         f'synthetic: {env} {label}')
        rows.append(np.hstack([left, right, np.full((TILE, 6, 3), 255, np.uint8)]))
    if not rows:
        raise AnomalyPerceptionError(
            f'No reference frames named <environment>_<type>.jpg in {str(reference_dir)!r}.')
    while len(rows) % pairs_per_row:
        rows.append(np.zeros_like(rows[0]))
    grid = np.vstack([np.hstack(rows[i:i + pairs_per_row])
                      for i in range(0, len(rows), pairs_per_row)])
    out = Path(out)
    atomic_write_bytes(out, cv2.imencode('.png', grid)[1].tobytes())
    return out, len([r for r in rows if r.any()])

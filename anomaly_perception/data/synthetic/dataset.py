"""``synth dataset``: a labelled dataset in the Hazards&Robots layout.

Layout written under the output directory::

    train_set/       normal frames of training sequences (no anomaly at all)
    validation_set/  normal and anomalous frames of validation sequences
    test_set/        normal and anomalous frames of test sequences, in scenes
                     never used by any other split (``test_scenes='unseen'``,
                     the default) or in the training scenes (``'seen'``)
    outliers_set/    anomalous frames for outlier exposure (training scenes)
    masks/           <stem>.png  uint8: 1 anomaly pixel, 0 otherwise
    instances/       <stem>.png  uint16 anomaly instance ids, 0 = none
    semantic/        <stem>.png  uint8 class ids (catalog.SEMANTIC_CLASSES), 255 void
    metadata/frames_labels.csv   one row per frame, keyed by filename
    manifest.json    generator version, seed, preset, counts per split and type
    contact_sheet.png

Splits are disjoint by sequence. Two protocols (``test_scenes``):

* ``unseen`` (default): validation and test sequences are also in scenes
  (scene seeds) of their own, so a model is tested in places it never saw.
* ``seen``: the RNVP+OE paper's protocol. Validation and test sequences are
  new patrols of the training scenes (the same places, other runs, other
  camera days). Train and outliers splits are byte-identical to the
  ``unseen`` dataset of the same seed; only the validation and test
  sequences move to other scenes.

Every frame is a pure function of the dataset seed and protocol, so the
bytes do not depend on ``--workers``.
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

import csv
import dataclasses
import io
import json
import multiprocessing
import os
from pathlib import Path

import cv2
import numpy as np

from . import GENERATOR_VERSION
from .catalog import anomaly_type
from .catalog import ANOMALY_TYPES
from .catalog import ENVIRONMENTS
from .catalog import LABEL_NAMES
from .catalog import SEMANTIC_CLASSES
from .world import MIN_VISIBLE_FRACTION
from .world import Sequence
from .world import SequenceSpec
from ...errors import AnomalyPerceptionError
from ...io.files import atomic_directory
from ...io.files import atomic_write_bytes
from ...io.files import atomic_write_text

SPLITS = ('train_set', 'validation_set', 'test_set', 'outliers_set')
CSV_FIELDS = ('filename', 'split', 'label', 'label_name', 'sequence', 'environment',
              'is_global', 'anomaly_px', 'n_instances', 'time_s', 'scene_seed')

PRESETS = {
    'tiny': {'frames': 160, 'image_size': 96, 'frames_per_sequence': 4},
    'small': {'frames': 2500, 'image_size': 512, 'frames_per_sequence': 10},
    'medium': {'frames': 10000, 'image_size': 512, 'frames_per_sequence': 20},
}
# Share of all frames per split, and the anomalous share inside each split.
SPLIT_SHARE = {'train_set': 0.5, 'validation_set': 0.12, 'test_set': 0.28,
               'outliers_set': 0.10}
ANOMALY_SHARE = {'train_set': 0.0, 'validation_set': 0.5, 'test_set': 0.5,
                 'outliers_set': 1.0}
# Where normal runs happen; anomalies follow the environments they occur in.
ENVIRONMENT_WEIGHTS = {'corridor': 0.7, 'factory': 0.15, 'tunnel': 0.15}
SCENE_POOL = {'train_set': 0, 'outliers_set': 0, 'validation_set': 1, 'test_set': 2}
TEST_SCENES = ('unseen', 'seen')
MIN_IMAGE_SIZE, MAX_IMAGE_SIZE = 32, 2048


class SynthError(AnomalyPerceptionError, ValueError):
    """A synthetic dataset or bag cannot be made as asked."""


@dataclasses.dataclass(frozen=True)
class SequenceTask:
    """One sequence to render into the dataset."""

    split: str
    name: str
    spec: SequenceSpec
    frames: int
    anomalous: bool


def _seed_int(*keys):
    return int(np.random.SeedSequence([int(k) for k in keys]).generate_state(1)[0])


def _scene_seed(seed, split, environment, index):
    return _seed_int(seed, 1000 + SCENE_POOL[split], ENVIRONMENTS.index(environment), index)


def _pick_environment(rng, allowed):
    weights = np.array([ENVIRONMENT_WEIGHTS[e] for e in allowed])
    return allowed[rng.choice(len(allowed), p=weights / weights.sum())]


def resolve_types(names):
    """Return the anomaly types to generate: all, or the comma-separated ``names``."""
    if not names:
        return list(ANOMALY_TYPES)
    try:
        return [anomaly_type(n.strip()) for n in names.split(',') if n.strip()]
    except ValueError as err:
        raise SynthError(str(err)) from None


def minimum_frames(n_types):
    """Fewest frames a dataset with ``n_types`` types can have (one per type per split)."""
    per_split = {s: n_types if ANOMALY_SHARE[s] else 0 for s in SPLITS}
    normal = 1 + 1 + 1  # train, validation, test each need a normal frame
    return sum(per_split.values()) + normal


def plan_dataset(preset='small', frames=None, seed=0, types=None, test_scenes='unseen'):
    """Split the frame budget into sequences (deterministic in ``seed``).

    ``test_scenes`` is the protocol: ``'unseen'`` puts validation and test
    sequences in scenes of their own, ``'seen'`` in the training scenes.

    Raises:
        SynthError: unknown preset or protocol, or a frame budget too small
            for the types.

    """
    if test_scenes not in TEST_SCENES:
        raise SynthError(f'Unknown test scenes {test_scenes!r}; choose from '
                         f'{", ".join(TEST_SCENES)}.')
    if preset not in PRESETS:
        raise SynthError(f'Unknown preset {preset!r}; choose from {", ".join(PRESETS)}.')
    kinds = resolve_types(types)
    total = int(frames if frames is not None else PRESETS[preset]['frames'])
    need = minimum_frames(len(kinds))
    if total < need:
        raise SynthError(
            f'Cannot make {total} frames: every split needs each of the {len(kinds)} anomaly '
            f'types at least once, so at least {need} frames are needed.')
    per_seq = PRESETS[preset]['frames_per_sequence']
    rng = np.random.default_rng(_seed_int(seed, 7))
    tasks = []
    counter = 0
    turn = {}
    trained = {}    # environment -> scene seeds of training runs, in order of first use

    def scene_for(split, env, n_scenes):
        # Round-robin over the split's scenes of that environment, shared by
        # normal and anomalous runs: every place hosts both, so no place's
        # look can stand in for "anomalous".
        k = turn.get((split, env), int(rng.integers(n_scenes)))
        turn[(split, env)] = k + 1
        if test_scenes == 'seen' and split in ('validation_set', 'test_set'):
            # New patrols of the places the training runs visited.
            visited = trained.get(env)
            if not visited:
                raise SynthError(
                    f'No training run visits a {env}, so the seen-scenes protocol cannot test '
                    f'there; ask for more frames than {total}.')
            return visited[k % len(visited)]
        scene = _scene_seed(seed, split, env, k % n_scenes)
        if split == 'train_set' and scene not in trained.setdefault(env, []):
            trained[env].append(scene)
        return scene

    for split in SPLITS:
        n_split = max(1, int(round(total * SPLIT_SHARE[split])))
        n_anom = int(round(n_split * ANOMALY_SHARE[split]))
        if ANOMALY_SHARE[split]:
            n_anom = max(n_anom, len(kinds))
        n_normal = n_split - n_anom if ANOMALY_SHARE[split] < 1 else 0
        if split != 'outliers_set':
            n_normal = max(n_normal, 1)
        # About eight runs per scene: places recur, as on a robot's patrol routes.
        n_scenes = max(2, int(np.ceil((n_normal + n_anom) / per_seq / 8)))
        # Normal runs.
        remaining = n_normal
        while remaining > 0:
            k = min(per_seq, remaining)
            env = _pick_environment(rng, list(ENVIRONMENTS))
            spec = SequenceSpec(seed=_seed_int(seed, 2, counter), environment=env,
                                scene_seed=scene_for(split, env, n_scenes),
                                duration_s=float(rng.uniform(15, 40)))
            tasks.append(SequenceTask(split, f'{split.split("_")[0]}_s{counter:05d}', spec,
                                      k, False))
            counter += 1
            remaining -= k
        # Anomalous runs: the budget shared evenly by the types.
        shares = np.full(len(kinds), n_anom // len(kinds))
        shares[:n_anom % len(kinds)] += 1
        for kind, share in zip(kinds, shares):
            remaining = int(share)
            while remaining > 0:
                k = min(per_seq, remaining)
                env = _pick_environment(rng, list(kind.environments))
                spec = SequenceSpec(seed=_seed_int(seed, 3, counter), environment=env,
                                    scene_seed=scene_for(split, env, n_scenes),
                                    anomaly=kind.name, duration_s=float(rng.uniform(10, 25)))
                tasks.append(SequenceTask(split, f'{split.split("_")[0]}_s{counter:05d}',
                                          spec, k, True))
                counter += 1
                remaining -= k
    return tasks


def _png(array):
    ok, buf = cv2.imencode('.png', array, [cv2.IMWRITE_PNG_COMPRESSION, 1])
    return buf.tobytes()


def render_task(task, root, image_size):
    """Render one sequence's frames into ``root``; return their CSV rows."""
    root = Path(root)
    seq = Sequence(task.spec)
    rng = np.random.default_rng(_seed_int(task.spec.seed, 99))
    rows = []
    attempts = 0
    times = list(seq.candidate_times(rng, task.frames * 6 + 12))
    if task.anomalous:
        times += list(seq.candidate_times(rng, task.frames * 6 + 12, near=True))
    while len(rows) < task.frames and attempts < len(times):
        t = float(times[attempts])
        attempts += 1
        frame = seq.frame(t, image_size, image_size)
        if frame.ambiguous:
            continue  # an anomaly barely in view: neither clearly normal nor anomalous
        if task.anomalous and frame.label == 0 and attempts < len(times) - (
                task.frames - len(rows)):
            continue  # look for a frame that shows it
        stem = f'{task.name}_f{len(rows):03d}'
        ok, jpg = cv2.imencode('.jpg', cv2.cvtColor(frame.image, cv2.COLOR_RGB2BGR),
                               [cv2.IMWRITE_JPEG_QUALITY, 95])
        (root / task.split / f'{stem}.jpg').write_bytes(jpg.tobytes())
        (root / 'masks' / f'{stem}.png').write_bytes(_png(frame.mask))
        (root / 'instances' / f'{stem}.png').write_bytes(_png(frame.instances))
        (root / 'semantic' / f'{stem}.png').write_bytes(_png(frame.semantic))
        rows.append({
            'filename': f'{stem}.jpg', 'split': task.split, 'label': frame.label,
            'label_name': frame.label_name, 'sequence': task.name,
            'environment': task.spec.environment, 'is_global': int(frame.is_global),
            'anomaly_px': int(frame.mask.sum()),
            'n_instances': int(len(np.unique(frame.instances)) - 1),
            'time_s': round(t, 3), 'scene_seed': task.spec.scene_seed,
        })
    return rows


def _worker(args):
    tasks, root, image_size = args
    rows = []
    for task in tasks:
        rows += render_task(task, root, image_size)
    return rows


def _init_worker():
    # One process per core: library thread pools would only fight each other.
    cv2.setNumThreads(1)


def _single_threaded_env():
    """Environment for worker processes: single-threaded BLAS/OpenMP (set before import)."""
    for key in ('OMP_NUM_THREADS', 'OPENBLAS_NUM_THREADS', 'MKL_NUM_THREADS'):
        os.environ.setdefault(key, '1')


def _jobs_by_scene(tasks, root, image_size):
    # One job per scene, so each worker builds a scene's textures once.
    groups = {}
    for task in sorted(tasks, key=lambda t: t.name):
        groups.setdefault((task.spec.environment, task.spec.scene_seed), []).append(task)
    jobs = [(group, root, image_size) for _, group in sorted(groups.items())]
    # Big jobs first, so the last ones to finish are short.
    return sorted(jobs, key=lambda job: -sum(t.frames for t in job[0]))


def write_dataset(out, *, preset='small', frames=None, image_size=None, seed=0, types=None,
                  workers=1, overwrite=False, progress=True, test_scenes='unseen'):
    """Generate a dataset into ``out`` (see the module docs); return the manifest dict.

    Raises:
        SynthError: bad preset, size or types.
        OutputExistsError: ``out`` exists and ``overwrite`` is false.

    """
    size = int(image_size or PRESETS.get(preset, {}).get('image_size', 512))
    if not MIN_IMAGE_SIZE <= size <= MAX_IMAGE_SIZE:
        raise SynthError(f'--image-size must be between {MIN_IMAGE_SIZE} and '
                         f'{MAX_IMAGE_SIZE} pixels, got {size}.')
    if workers < 1:
        raise SynthError(f'--workers must be at least 1, got {workers}.')
    tasks = plan_dataset(preset, frames, seed, types, test_scenes)
    total = sum(t.frames for t in tasks)
    with atomic_directory(out, overwrite=overwrite) as tmp:
        for name in (*SPLITS, 'masks', 'instances', 'semantic', 'metadata'):
            (tmp / name).mkdir()
        rows = []
        jobs = _jobs_by_scene(tasks, str(tmp), size)
        bar = _progress(total, progress)
        if workers == 1:
            for job in jobs:
                rows += _worker(job)
                bar.update(sum(t.frames for t in job[0]))
        else:
            _single_threaded_env()
            ctx = multiprocessing.get_context('spawn')
            with ctx.Pool(workers, initializer=_init_worker) as pool:
                for done in pool.imap_unordered(_worker, jobs, chunksize=1):
                    rows += done
                    bar.update(len(done))
        bar.close()
        rows.sort(key=lambda r: r['filename'])
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=CSV_FIELDS, lineterminator='\n')
        writer.writeheader()
        writer.writerows(rows)
        atomic_write_text(tmp / 'metadata' / 'frames_labels.csv', buf.getvalue())
        manifest = _manifest(rows, tasks, preset, frames, size, seed, types, test_scenes)
        atomic_write_text(tmp / 'manifest.json', json.dumps(manifest, indent=2) + '\n')
        sheet = contact_sheet(tmp, rows)
        atomic_write_bytes(tmp / 'contact_sheet.png', cv2.imencode('.png', sheet)[1].tobytes())
    return manifest


def _progress(total, enabled):
    from tqdm import tqdm
    return tqdm(total=total, unit='frame', desc='synth dataset', disable=not enabled,
                dynamic_ncols=True)


def _manifest(rows, tasks, preset, frames, size, seed, types, test_scenes='unseen'):
    counts = {split: {} for split in SPLITS}
    for row in rows:
        c = counts[row['split']]
        c[row['label_name']] = c.get(row['label_name'], 0) + 1
    scenes = {split: sorted({t.spec.scene_seed for t in tasks if t.split == split})
              for split in SPLITS}
    return {
        'generator': 'anomaly_perception.data.synthetic',
        'generator_version': GENERATOR_VERSION,
        'preset': preset, 'frames_requested': frames, 'frames': len(rows),
        'image_size': size, 'seed': seed, 'types': types or 'all',
        'test_scenes': test_scenes,
        'min_visible_fraction': MIN_VISIBLE_FRACTION,
        'labels': {str(k): v for k, v in LABEL_NAMES.items()},
        'global_types': [t.name for t in ANOMALY_TYPES if t.is_global],
        'semantic_classes': list(SEMANTIC_CLASSES), 'void': 255,
        'counts': counts,
        'sequences': {split: sum(1 for t in tasks if t.split == split) for split in SPLITS},
        'scene_seeds': scenes,
    }


def contact_sheet(root, rows, per_row=6, tile=112):
    """Build a grid like Fig. 3 of the RNVP+OE paper: normals, then one row per type.

    Returns a BGR uint8 image (for cv2.imwrite).
    """
    root = Path(root)
    by_label = {}
    for row in rows:
        if row['split'] in ('test_set', 'validation_set', 'outliers_set', 'train_set'):
            by_label.setdefault(row['label_name'], []).append(row)
    order = ['normal'] + [t.name for t in ANOMALY_TYPES]
    lines = []
    for name in order:
        picks = by_label.get(name, [])
        if not picks:
            continue
        # One frame per sequence first, so a row shows different places.
        seen, chosen = set(), []
        for row in picks[::max(1, len(picks) // (4 * per_row))]:
            if row['sequence'] not in seen:
                seen.add(row['sequence'])
                chosen.append(row)
        chosen = (chosen + [r for r in picks if r not in chosen])[:per_row]
        tiles = []
        for row in chosen:
            img = cv2.imread(str(root / row['split'] / row['filename']), cv2.IMREAD_COLOR)
            tiles.append(cv2.resize(img, (tile, tile), interpolation=cv2.INTER_AREA))
        while len(tiles) < per_row:
            tiles.append(np.zeros((tile, tile, 3), np.uint8))
        label = np.full((tile, 120, 3), 255, np.uint8)
        cv2.putText(label, name, (4, tile // 2 + 5), cv2.FONT_HERSHEY_SIMPLEX, 0.45,
                    (0, 0, 0), 1, cv2.LINE_AA)
        lines.append(np.hstack([label] + tiles))
    return np.vstack(lines)


def read_labels(root):
    """Read ``metadata/frames_labels.csv`` as a list of dicts (ints converted)."""
    path = Path(root) / 'metadata' / 'frames_labels.csv'
    with open(path, newline='') as handle:
        rows = list(csv.DictReader(handle))
    for row in rows:
        for key in ('label', 'is_global', 'anomaly_px', 'n_instances'):
            if key in row:
                row[key] = int(row[key])
    return rows


def cpu_count():
    return len(os.sched_getaffinity(0)) if hasattr(os, 'sched_getaffinity') else os.cpu_count()

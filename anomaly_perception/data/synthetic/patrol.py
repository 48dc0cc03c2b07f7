"""``synth bag``: a continuous patrol as the Robomaster driver records it.

The robot drives along one scene for ``seconds``; anomalies of assorted
types are placed along the way (local ones at positions the robot drives
past, global ones as time intervals), so they appear and disappear as in a
real patrol. The bag holds what the robomaster_ros driver publishes plus
the labels the replay evaluation reads:

=========================================  ===============================  ==========
topic                                      type                             content
=========================================  ===============================  ==========
``/<ns>/camera/image_color``               sensor_msgs/Image                bgr8 frames
``/<ns>/camera/camera_info``               sensor_msgs/CameraInfo           pinhole K
``/<ns>/labels/frame``                     vision_msgs/Classification       frame label
``/<ns>/labels/instances``                 sensor_msgs/Image (16UC1)        instance ids
``/<ns>/labels/semantic``                  sensor_msgs/Image (mono8)        class ids
=========================================  ===============================  ==========

Every label message carries the header (stamp and frame_id) of its image.
The frame label's ``results[0].class_id`` is ``'normal'`` or the anomaly
type name; whether a type is global is in :mod:`.catalog`.
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
import multiprocessing

import numpy as np

from . import GENERATOR_VERSION
from .dataset import _init_worker
from .dataset import _scene_seed
from .dataset import _seed_int
from .dataset import _single_threaded_env
from .dataset import resolve_types
from .dataset import SynthError
from .world import Event
from .world import Sequence
from .world import SequenceSpec
from ...io.bag_writer import BagWriter
from ...io.images import numpy_to_image

#: Stamp of the first frame: 2026-01-01T00:00:00Z (fixed, for reproducible bags).
START_NS = 1_767_225_600 * 1_000_000_000
EVENT_VISIBLE_S = 8.0   # about how long one anomaly stays in view
RESOLUTIONS = ((640, 360), (960, 540), (1280, 720))


@dataclasses.dataclass(frozen=True)
class PatrolConfig:
    """Options of ``synth bag`` (see the CLI help)."""

    seconds: float = 60.0
    fps: float = 30.0
    resolution: tuple = (640, 360)
    anomaly_rate: float = 0.3
    namespace: str = 'robomaster'
    storage: str = 'mcap'
    seed: int = 0
    environment: str = 'corridor'
    types: str = None
    distro: str = 'humble'
    scene_seed: int = None


def topic_names(namespace):
    """Topic names for a robot namespace (empty namespace: no prefix)."""
    ns = '/' + namespace.strip('/') if namespace.strip('/') else ''
    return {
        'image': f'{ns}/camera/image_color',
        'camera_info': f'{ns}/camera/camera_info',
        'label': f'{ns}/labels/frame',
        'instances': f'{ns}/labels/instances',
        'semantic': f'{ns}/labels/semantic',
    }


def frame_id(namespace):
    ns = namespace.strip('/')
    return f'{ns}/camera_optical_link' if ns else 'camera_optical_link'


def _check(config):
    if not 0 < config.seconds <= 3600:
        raise SynthError(f'--seconds must be in (0, 3600], got {config.seconds}.')
    if not 1 <= config.fps <= 120:
        raise SynthError(f'--fps must be between 1 and 120, got {config.fps}.')
    if not 0 <= config.anomaly_rate <= 1:
        raise SynthError(f'--anomaly-rate must be between 0 and 1, got {config.anomaly_rate}.')
    w, h = config.resolution
    if not (32 <= w <= 4096 and 32 <= h <= 4096):
        raise SynthError(f'--resolution {w}x{h} is outside 32..4096 pixels per side.')
    kinds = resolve_types(config.types)
    usable = [k for k in kinds if config.environment in k.environments]
    if config.anomaly_rate > 0 and not usable:
        raise SynthError(f'None of the requested anomaly types occurs in '
                         f'{config.environment!r}.')
    return usable


def plan_patrol(config):
    """Plan the :class:`SequenceSpec` of a patrol (deterministic in ``config.seed``)."""
    kinds = _check(config)
    rng = np.random.default_rng(_seed_int(config.seed, 51))
    speed = float(rng.uniform(0.3, 0.5))
    scene = patrol_scene_seed(config)
    probe = Sequence(SequenceSpec(seed=_seed_int(config.seed, 52), environment=config.environment,
                                  scene_seed=scene, duration_s=config.seconds, speed=speed))
    start_z = probe.start_z
    # The first seconds stay normal: a patrol starts in a known-good state.
    lead = min(4.0, 0.2 * config.seconds)
    span = config.seconds - lead
    n_events = int(round(config.anomaly_rate * span / EVENT_VISIBLE_S))
    if config.anomaly_rate > 0 and kinds:
        n_events = max(n_events, 1)
    slot = span / max(n_events, 1)
    events = []
    for k in range(n_events):
        kind = kinds[rng.integers(len(kinds))]
        slot_start = lead + k * slot
        slot_end = slot_start + slot
        if kind.is_global:
            length = float(rng.uniform(min(3.0, 0.5 * slot), min(8.0, 0.9 * slot)))
            start = float(rng.uniform(slot_start, slot_end - length))
            events.append(Event(kind.name, start_s=start, duration_s=length))
        else:
            # In view from ~4.5 m ahead until the robot is over it.
            t_pass = float(rng.uniform(slot_start + 0.75 * slot, slot_end))
            events.append(Event(kind.name, z=start_z + speed * t_pass + 0.3))
    return SequenceSpec(seed=_seed_int(config.seed, 52), environment=config.environment,
                        scene_seed=scene, duration_s=config.seconds,
                        events=tuple(events), speed=speed)


def patrol_scene_seed(config):
    """Return the scene (seed) a patrol drives through.

    By default one of the places the default datasets (seed 0) train on, so
    the patrol is in the building a model trained on those datasets knows,
    as a deployed robot's model would; ``config.scene_seed`` picks another
    place (e.g. one never seen in training).
    """
    if config.scene_seed is not None:
        return int(config.scene_seed)
    return _scene_seed(0, 'train_set', config.environment, config.seed % 8)


def _render_chunk(args):
    spec, times, width, height = args
    seq = _sequence(spec)
    out = []
    for t in times:
        frame = seq.frame(float(t), width, height)
        out.append((frame.image, frame.instances, frame.semantic, frame.label,
                    frame.label_name, frame.is_global))
    return out


_SEQ_CACHE = {}


def _sequence(spec):
    seq = _SEQ_CACHE.get(spec)
    if seq is None:
        _SEQ_CACHE.clear()
        seq = _SEQ_CACHE[spec] = Sequence(spec)
    return seq


def camera_info(factory, header, intr):
    """Build a ``sensor_msgs/CameraInfo`` for the synthetic pinhole camera."""
    f = intr.focal
    cx, cy = intr.width / 2 - 0.5, intr.height / 2 - 0.5
    return factory.new(
        'sensor_msgs/msg/CameraInfo', header=header, height=intr.height, width=intr.width,
        distortion_model='plumb_bob', d=np.zeros(5),
        k=[f, 0, cx, 0, f, cy, 0, 0, 1], r=[1, 0, 0, 0, 1, 0, 0, 0, 1],
        p=[f, 0, cx, 0, 0, f, cy, 0, 0, 0, 1, 0])


def write_patrol_bag(out, config=PatrolConfig(), *, workers=1, overwrite=False, progress=True):
    """Render a patrol and write it as a ROS 2 bag at ``out``; return a summary dict.

    Raises:
        SynthError: invalid options.
        OutputExistsError: ``out`` exists and ``overwrite`` is false.

    """
    spec = plan_patrol(config)
    width, height = config.resolution
    n = int(round(config.seconds * config.fps))
    times = np.arange(n) / config.fps
    period_ns = int(round(1e9 / config.fps))
    stamps = START_NS + np.arange(n, dtype=np.int64) * period_ns
    topics = topic_names(config.namespace)
    fid = frame_id(config.namespace)
    summary = {
        'generator_version': GENERATOR_VERSION, 'seed': config.seed, 'frames': n,
        'fps': config.fps, 'resolution': [width, height], 'environment': config.environment,
        'topics': topics, 'frame_id': fid,
        'events': [dataclasses.asdict(e) for e in spec.events],
    }
    chunk = 30
    jobs = [(spec, times[i:i + chunk], width, height) for i in range(0, n, chunk)]
    seq = _sequence(spec)
    intr = seq.intrinsics(width, height)
    counts = {}
    from tqdm import tqdm
    bar = tqdm(total=n, unit='frame', desc='synth bag', disable=not progress, dynamic_ncols=True)
    custom = {'anomaly_perception.synthetic_patrol': json.dumps(summary)}
    with BagWriter(out, storage=config.storage, distro=config.distro, overwrite=overwrite,
                   compression='zstd', custom_data=custom) as bag:
        f = bag.factory
        bag.add_topic(topics['image'], 'sensor_msgs/msg/Image')
        bag.add_topic(topics['camera_info'], 'sensor_msgs/msg/CameraInfo')
        bag.add_topic(topics['label'], 'vision_msgs/msg/Classification')
        bag.add_topic(topics['instances'], 'sensor_msgs/msg/Image')
        bag.add_topic(topics['semantic'], 'sensor_msgs/msg/Image')
        index = 0

        def write(results):
            nonlocal index
            for image, instances, semantic, label, name, _ in results:
                header = f.header(int(stamps[index]), fid)
                bag.write(topics['image'], numpy_to_image(
                    np.ascontiguousarray(image[..., ::-1]), 'bgr8', header, f))
                bag.write(topics['camera_info'], camera_info(f, header, intr))
                bag.write(topics['label'], f.new(
                    'vision_msgs/msg/Classification', header=header,
                    results=[f.new('vision_msgs/msg/ObjectHypothesis', class_id=name,
                                   score=1.0)]))
                bag.write(topics['instances'], numpy_to_image(instances, '16UC1', header, f))
                bag.write(topics['semantic'], numpy_to_image(semantic, 'mono8', header, f))
                counts[name] = counts.get(name, 0) + 1
                index += 1
                bar.update(1)

        if workers == 1:
            for job in jobs:
                write(_render_chunk(job))
        else:
            _single_threaded_env()
            ctx = multiprocessing.get_context('spawn')
            with ctx.Pool(workers, initializer=_init_worker) as pool:
                for results in pool.imap(_render_chunk, jobs):
                    write(results)
    bar.close()
    summary['label_counts'] = counts
    summary['anomalous_fraction'] = 1 - counts.get('normal', 0) / max(n, 1)
    return summary

"""``train place``: the whole stack of one place from its bags, and the place directory.

A place directory holds what a robot needs to patrol one building::

    PLACE/
      frame/          the frame branch learnt from the bags (train frame --bag)
      pixel/          the pixel branch learnt from the same bags (train pixel --bag)
      instance/       optional (--promptable): a click-crops promptable model tuned
                      on the same bags (train promptable --design crops --bag)
      place.yaml      the camera, the fused flag's rule and level, provenance
      manifest.yaml   sha256 and size of every other file

:func:`train_place_from_bags` runs both branches' learning on the same
bags (tagged intervals, ``--exposed``, feed the frame branch), then fits the
fused flag (:mod:`~...stream.fusion`) on their held-out normal blocks,
paired frame by frame, for a target of false alarms per hour. Given a
click-crops promptable model to start from, it also tunes it on the same
bags with pasted objects (without one the place has no instance model and
the instance node runs its baseline). Every training resumes from its work
directory; the place directory appears only when complete. :func:`load_place`
(:mod:`.directory`) refuses a place whose files are missing, changed, or whose
models were learnt from different cameras, naming the file.
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
import tempfile
import time

import yaml

from .directory import BRANCHES
from .directory import FORMAT
from .directory import MANIFEST
from .directory import PLACE_FILE
from ..frame.train_bags import BagTrainingConfig
from ..frame.train_bags import train_frame_from_bags
from ..instance.place_clickcrops import PLACE_STEPS
from ..instance.place_clickcrops import tune_clickcrops_on_bags
from ..instance.train_clickcrops import ClickCropsTrainingConfig
from ..pixel.place import PlaceTrainingConfig
from ..pixel.place import train_pixel_from_bags
from ...data.bag_frames import BagFramesError
from ...io.bags import BagReader
from ...io.files import atomic_directory
from ...runtime.manifest import plain_data
from ...runtime.manifest import sha256_file
from ...scoring.calibration import EmpiricalCalibration
from ...stream.fusion import paired_heldout
from ...stream.hazard import HazardConfig
from ...stream.hazard import heldout_sequences
from ...stream.hazard import on_probability_for_rate
from ...training import is_main_process
from ...training import training_environment
from ...training import TrainingError


@dataclasses.dataclass
class PlaceConfig:
    """Options of ``train place``: each branch's learning, and the fused flag."""

    frame: BagTrainingConfig = dataclasses.field(default_factory=BagTrainingConfig)
    pixel: PlaceTrainingConfig = dataclasses.field(default_factory=PlaceTrainingConfig)
    target_false_alarms_per_hour: float = 2.0
    rule: str = 'max_probability'
    hysteresis: float = 0.1
    promptable: ClickCropsTrainingConfig = dataclasses.field(
        default_factory=lambda: ClickCropsTrainingConfig(steps=PLACE_STEPS))
    promptable_every: int = 10


def _say(show_progress, text):
    if show_progress:
        print(f'[place] {text}', flush=True)


def camera_of(bag, topic=None):
    """Return ``(topic, (width, height))`` of a bag's camera: its first decodable image."""
    with BagReader(bag) as reader:
        topic = reader.find_image_topic(topic)
        for frame in reader.read_images(topic, on_error='skip'):
            h, w = frame.image.shape[:2]
            return topic, (int(w), int(h))
    raise BagFramesError(f'Bag {str(bag)!r} has no readable image on {topic}.')


def check_one_camera(bags, topic=None):
    """Refuse bags of different cameras (sizes); return ``(topic, (width, height))`` of the first.

    Raises:
        BagFramesError: the bags' images differ in size (each bag named with its size).

    """
    cameras = {str(bag): camera_of(bag, topic) for bag in bags}
    sizes = {size for _, size in cameras.values()}
    if len(sizes) > 1:
        listed = ', '.join(f'{bag} ({w}x{h})' for bag, (_, (w, h)) in cameras.items())
        raise BagFramesError(f'The bags come from different cameras: {listed}. A place learns '
                             'one camera: train one place per camera.')
    return next(iter(cameras.values()))


def fit_fusion(frame_manifest, pixel_manifest, config):
    """Return ``place.yaml``'s ``fusion``: the fused flag's level on the paired held-out blocks.

    The frame model's held-out blocks and the pixel model's first copy of
    them (as driven; the second is its other-run views) cover the same
    frames; each branch's calibration turns their scores into
    probabilities, :func:`~...stream.fusion.paired_heldout` fuses them.
    """
    frame_blocks = frame_manifest['alarms']['heldout']
    pixel_blocks = pixel_manifest['alarms']['heldout']['blocks']
    as_driven = {'blocks': pixel_blocks[:len(frame_blocks['blocks'])]}
    if [b['t_ms'] for b in frame_blocks['blocks']] != [b['t_ms'] for b in as_driven['blocks']]:
        raise TrainingError('The frame and pixel branches held out different frames (their '
                            'time-block splits differ): give both the same block_s, '
                            'val_every, guard_s and every.')
    sequences = {
        'frame': heldout_sequences(frame_blocks, EmpiricalCalibration.from_dict(
            frame_manifest['calibration'])),
        'pixel': heldout_sequences(as_driven, EmpiricalCalibration.from_dict(
            pixel_manifest['frame_calibration']))}
    fused = paired_heldout(sequences, config.rule)
    hazard = HazardConfig()
    on, details = on_probability_for_rate(fused, hazard, config.target_false_alarms_per_hour,
                                          config.hysteresis)
    return {'rule': config.rule, 'branches': list(BRANCHES),
            'target_false_alarms_per_hour': float(config.target_false_alarms_per_hour),
            'on_probability': float(on), 'off_probability': float(max(0.0, on -
                                                                      config.hysteresis)),
            'hazard_filter': {'smoothing': hazard.smoothing, 'min_on_s': hazard.min_on_s,
                              'min_off_s': hazard.min_off_s},
            'heldout_frames': int(sum(len(s) for s, _ in fused)), 'fit': details}


def train_place_from_bags(bags, place_dir, work_dir, config=None, *, exposed=(),
                          pixel_init_from=None, promptable_from=None, overwrite=False,
                          show_progress=True, command=None, device='cpu'):
    """``train place``: learn both branches and the fused flag; write ``place_dir``.

    ``pixel_init_from``: the pixel model to start from (default the shipped
    one). ``promptable_from``: a click-crops promptable model to tune on the
    same bags into ``instance/`` (default none: no instance model). Returns
    the ``place.yaml`` written. Trains on ``device``; under ``torchrun`` the
    processes of rank > 0 train every model beside rank 0, write nothing
    and return None.

    Raises:
        BagError / BagFramesError: unusable bags, or bags of different cameras.
        TrainingError: too little driving, bad options.
        OutputExistsError: ``place_dir`` exists and ``overwrite`` is false.

    """
    config = config or PlaceConfig()
    started = time.perf_counter()
    if not bags:
        raise TrainingError('train place needs at least one bag of normal driving.')
    for bag in list(bags) + [s.bag for s in exposed]:
        if not Path(bag).exists():
            raise TrainingError(f'Bag {str(bag)!r} does not exist.')
    topic, (width, height) = check_one_camera(list(bags) + [s.bag for s in exposed],
                                              config.frame.topic)
    work = Path(work_dir)
    parts = 4 if promptable_from else 3
    if promptable_from and not Path(promptable_from).is_dir():
        raise TrainingError(f'Promptable model {str(promptable_from)!r} does not exist.')
    if not is_main_process():
        with tempfile.TemporaryDirectory() as scratch:
            train_frame_from_bags(bags, Path(scratch) / 'frame', work / 'frame', config.frame,
                                  exposed=exposed, show_progress=False, device=device)
            train_pixel_from_bags(bags, Path(scratch) / 'pixel', work / 'pixel', config.pixel,
                                  init_from=pixel_init_from, show_progress=False,
                                  device=device)
            if promptable_from:
                tune_clickcrops_on_bags(list(bags), promptable_from, Path(scratch) / 'instance',
                                        work / 'instance', config.promptable,
                                        every=config.promptable_every, topic=topic,
                                        show_progress=False, device=device)
        return None
    with atomic_directory(place_dir, overwrite=overwrite) as tmp:
        _say(show_progress, f'1/{parts} the frame branch')
        t0 = time.perf_counter()
        frame = train_frame_from_bags(bags, tmp / 'frame', work / 'frame', config.frame,
                                      exposed=exposed, show_progress=show_progress,
                                      command=command, device=device)
        _say(show_progress, f'2/{parts} the pixel branch')
        t1 = time.perf_counter()
        pixel = train_pixel_from_bags(bags, tmp / 'pixel', work / 'pixel', config.pixel,
                                      init_from=pixel_init_from, show_progress=show_progress,
                                      command=command, device=device)
        _say(show_progress, f'3/{parts} the fused flag')
        t2 = time.perf_counter()
        fusion = fit_fusion(frame, pixel, config)
        branches, wall = {name: name for name in BRANCHES}, {}
        if promptable_from:
            _say(show_progress, f'4/{parts} the promptable model (pasted objects)')
            tune_clickcrops_on_bags(list(bags), promptable_from, tmp / 'instance',
                                    work / 'instance', config.promptable,
                                    every=config.promptable_every, topic=topic,
                                    show_progress=show_progress, command=command,
                                    device=device)
            branches['instance'] = 'instance'
            wall['instance'] = round(time.perf_counter() - t2, 1)
        place = {
            'format': FORMAT, 'name': Path(place_dir).name,
            'branches': branches,
            'camera': {'topic': topic, 'resolution': [width, height]},
            'fusion': fusion,
            'provenance': {
                'command': command, 'bags': [Path(b).name for b in bags],
                'exposed': [f'{Path(s.bag).name}:{Path(s.intervals).name}' for s in exposed],
                'wall_s': {'frame': round(t1 - t0, 1), 'pixel': round(t2 - t1, 1), **wall,
                           'total': round(time.perf_counter() - started, 1)},
                **training_environment()}}
        (tmp / PLACE_FILE).write_text(yaml.safe_dump(plain_data(place), sort_keys=False))
        files = {str(p.relative_to(tmp)): {'sha256': sha256_file(p), 'bytes': p.stat().st_size}
                 for p in sorted(tmp.rglob('*')) if p.is_file()}
        (tmp / MANIFEST).write_text(yaml.safe_dump({'format': FORMAT, 'files': files},
                                                   sort_keys=False))
    return place

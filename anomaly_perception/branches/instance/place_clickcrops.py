"""Tuning a click-crops promptable model on a place (``train promptable --design crops --bag``).

A robot's operator has normal patrol bags of the building, not masks. Every
``every``-th frame of the bags gets one to three cut-outs pasted onto it
(:class:`~..pixel.paste.Paster`, the sources ``train place`` pastes: the
synthetic world's anomaly sprites and procedural shapes), one paste at a
time, so that each cut-out is one instance with an exact mask (a later
paste covers an earlier one). Clicks go on those instances, and the model
(``--init-promptable``, a ``--design crops`` model) is trained further
from its weights on them, with the same losses and schedule as
:mod:`.train_clickcrops`. Every fourth kept frame is held out, pasted with
other draws, for the validation IoU that picks the best step.

What this can and cannot teach: the place's floor, walls and light behind
the objects, at the camera's own resolution; not the look of the hazards
the building will really have (the pasted ones are the same everywhere).
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
import time

import numpy as np

from .promptable import PROMPTABLE_FILE
from .train_clickcrops import ClickCropsTrainingConfig
from .train_clickcrops import plain_config
from .train_clickcrops import train_clickcrops_network
from .train_promptable import RegionData
from ...runtime.manifest import write_model_dir
from ...training import is_main_process
from ...training import to_bytes
from ...training import training_environment
from ...training import TrainingError

HELD_OUT_EVERY = 4          # every 4th kept frame validates
PLACE_STEPS = 600


def pasted_click_data(images, seed, per_frame=(1, 3), min_region=16,
                      sources=('world', 'procedural')):
    """:class:`~.train_promptable.RegionData` of frames with cut-outs pasted, one id each.

    ``images``: uint8 ``[N, h, w, 3]`` normal frames of a place. Pasted
    objects under ``min_region`` visible pixels are dropped (their pixels
    stay pasted, unlabelled, as a speck on the floor would be).
    """
    from ..pixel.paste import CutoutBank
    from ..pixel.paste import PasteOptions
    from ..pixel.paste import Paster
    paster = Paster(CutoutBank(sources), PasteOptions(per_image=(1, 1)))
    rng = np.random.default_rng(seed)
    out, regions, anomalous = [], [], []
    for image in images:
        ids = np.zeros(image.shape[:2], np.int16)
        for k in range(1, int(rng.integers(per_frame[0], per_frame[1] + 1)) + 1):
            image, void, _ = paster.paste_visible(image, rng, min_region)
            ids[void] = k
        for k in np.unique(ids):
            if k and (ids == k).sum() < min_region:
                ids[ids == k] = 0
        out.append(image)
        regions.append(ids)
        anomalous.append({int(k) for k in np.unique(ids) if k})
    regions = np.stack(regions)
    return RegionData(np.stack(out), regions, anomalous, regions.astype(np.uint16))


def bag_resolution(bag, topic=None):
    """Return ``(h, w)`` of the first camera frame of ``bag`` (BagError if it has none)."""
    from ...io.bags import BagReader
    with BagReader(bag) as reader:
        for frame in reader.read_images(reader.find_image_topic(topic)):
            return frame.image.shape[:2]
    raise TrainingError(f'{str(bag)!r} has no camera frame to learn a place from.')


def tune_clickcrops_on_bags(bags, init_dir, model_dir, work_dir, config=None, *, every=10,
                            topic=None, overwrite=False, show_progress=True, command=None,
                            device='cpu'):
    """Tune the click-crops model ``init_dir`` on ``bags``' frames; write ``model_dir``.

    ``config``: the schedule (steps, batch size, learning rate...); its
    network options are ignored: the spec is ``init_dir``'s. Resumable from
    ``work_dir``. Returns the manifest (None in the processes of rank > 0
    of a ``torchrun`` job, which train beside rank 0 and write nothing).

    Raises:
        TrainingError: ``init_dir`` is not a click-crops model, or the bags hold
            too few frames (fewer than ``HELD_OUT_EVERY`` kept).
        BagError, BagFramesError: an unreadable bag or a camera that changes size.

    """
    from .clickcrops import ARCHITECTURE
    from .promptable import load_promptable
    from ...data.bag_frames import extract_bag_frames
    seg, init = load_promptable(init_dir)
    if init['architecture'].get('type') != ARCHITECTURE:
        raise TrainingError(f'{str(init_dir)!r} is not a --design crops model '
                            f"({init['architecture'].get('type')}); tune a crops model.")
    spec = init['architecture']['spec']
    config = dataclasses.replace(config or ClickCropsTrainingConfig(steps=PLACE_STEPS),
                                 crop_size=spec['crop_size'], scales=tuple(spec['scales']),
                                 widths=tuple(spec['widths']), anomaly_share=1.0)
    started = time.perf_counter()
    shape = bag_resolution(bags[0], topic)
    frames = extract_bag_frames(bags, shape, topic=topic, every=every,
                                show_progress=show_progress)
    if len(frames) < HELD_OUT_EVERY:
        raise TrainingError(f'{len(frames)} frames kept from {len(bags)} bag(s) at --every '
                            f'{every}; at least {HELD_OUT_EVERY} are needed.')
    held = np.arange(len(frames)) % HELD_OUT_EVERY == HELD_OUT_EVERY - 1
    train = pasted_click_data(frames.images[~held], config.seed, min_region=config.min_region)
    val = pasted_click_data(frames.images[held], config.seed + 1, min_region=config.min_region)
    before = _held_out_iou(seg, val)
    net, state, spec = train_clickcrops_network(
        train, val, work_dir, config, show_progress, device,
        init_state=seg.net.state_dict())
    if not is_main_process():
        return None             # rank 0 of the torchrun job writes
    manifest = {
        'name': Path(model_dir).name, 'branch': 'instance',
        'architecture': {'type': ARCHITECTURE, 'spec': spec},
        'training': dict(plain_config(config), every=every, place=True),
        'metrics': {'validation_anomaly_iou': state['best_iou'],
                    'held_out_iou_before': before, 'best_step': state['best_step'],
                    'history': state['history']},
        'provenance': {'bags': frames.sources, 'init_promptable': str(init_dir),
                       'command': command,
                       'frames': {'train': int((~held).sum()), 'held_out': int(held.sum()),
                                  'input': list(shape)},
                       'wall_s': time.perf_counter() - started, 'device': str(device),
                       **training_environment()},
    }
    weights = {k: v.cpu() for k, v in net.state_dict().items()}
    return write_model_dir(model_dir, manifest, {PROMPTABLE_FILE: to_bytes(weights)},
                           overwrite=overwrite)


def _held_out_iou(seg, val):
    from .train_clickcrops import one_point_iou
    return one_point_iou(seg, val.images, val.instances)[0]

"""The branches by name: the package's table of contents.

Each entry below says where a branch's pieces are (see
:class:`~.branch.Branch` for what each one is), its shipped model and its
node:

=========  ==========================  ==========================================
branch     node                        notes
=========  ==========================  ==========================================
frame      ``frame_anomaly_node``      every frame
pixel      ``pixel_anomaly_node``      every frame or rate-capped; FSNet's head
instance   ``instance_anomaly_node``   keyframes; ``bench`` points elsewhere
synthesis  none (offline)              keyframes; no ONNX graph, no ``score``
=========  ==========================  ==========================================

``replay``, ``score``, ``bench``, the replay summary, ``demo`` and the
node base take branches from this table; no other module keeps a table or
an if-chain of branches. An entry is built on first use (that imports the
branch's code; listing the names imports only the branch packages' light
``__init__``, which register their architectures). A branch added at run
time (:func:`register`) is served the same way as these.
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

from . import frame
from . import instance
from . import pixel
from . import synthesis
from .branch import Branch
from .branch import UnknownBranchError

__all__ = ['Branch', 'UnknownBranchError', 'branch_names', 'get_branch', 'get_branches',
           'register', 'unregister']


def _frame():
    from .frame import config, messages, recorder, score, stream
    return Branch(
        name='frame', description='per-frame anomaly score and hazard flag (RNVP+OE)',
        config=config.FrameNodeConfig, config_module=config, stream=stream.FrameStream,
        messages=messages, builder=messages.FrameMessageBuilder,
        recorder=recorder.FrameRecorder, score=score.write_scores,
        shipped_model=frame.SHIPPED_MODEL, node='frame_anomaly_node')


def _pixel():
    from .pixel import config, messages, recorder, score, stream
    return Branch(
        name='pixel', description='per-pixel anomaly map, mask and semantic ids (ERFNet), and '
        "FSNet's failure map",
        config=config.PixelNodeConfig, config_module=config, stream=stream.PixelStream,
        messages=messages, builder=messages.PixelMessageBuilder,
        recorder=recorder.PixelRecorder, score=score.write_scores,
        shipped_model=pixel.SHIPPED_MODEL, node='pixel_anomaly_node')


def _instance():
    from .instance import config, messages, recorder, score, stream
    return Branch(
        name='instance', description='anomaly instances on keyframes, placed on the floor '
        '(UGainS: pixel map -> farthest-point prompts -> promptable segmenter)',
        config=config.InstanceNodeConfig, config_module=config, stream=stream.InstanceStream,
        messages=messages, builder=messages.InstanceMessageBuilder,
        recorder=recorder.InstanceRecorder, score=score.write_scores,
        bench='a keyframe is the pixel model plus a promptable segmenter on PyTorch, not one '
        'graph per backend; time it with python benchmarks/bench_instance.py (keyframe '
        'latency, batched vs one prompt at a time).',
        shipped_model=instance.DEFAULT_MODEL, model_free=(instance.DEFAULT_MODEL,),
        node='instance_anomaly_node')


def _synthesis():
    from .synthesis import config, messages, recorder, stream
    return Branch(
        name='synthesis', description='anomalies by synthesis on keyframes, offline: a DDPM '
        'of the normal world edits the frame, the input-edit distance is the map',
        config=config.SynthesisConfig, config_module=config, stream=stream.SynthesisStream,
        messages=messages, builder=messages.SynthesisMessageBuilder,
        recorder=recorder.SynthesisRecorder,
        score='use anomaly-perception synthesize IMAGES --out DIR (the edit, the map and a '
        'panel per image).',
        bench='a guided edit is many DDPM passes with gradients, on PyTorch only; time it with '
        'python benchmarks/bench_synthesis.py (seconds per image at the default and respaced '
        'schedules).',
        shipped_model=synthesis.SHIPPED_MODEL, node=None, exportable=False)


_BUILTIN = {'frame': _frame, 'pixel': _pixel, 'instance': _instance, 'synthesis': _synthesis}
_LOADED = {}


def register(branch):
    """Add (or replace) a :class:`Branch` at run time; every command then serves it."""
    _LOADED[branch.name] = branch


def unregister(name):
    """Remove a branch added with :func:`register` (a built-in one is built again on next use)."""
    _LOADED.pop(name, None)


def branch_names():
    """Return the registered branch names, sorted."""
    return sorted({*_BUILTIN, *_LOADED})


def get_branch(name):
    """Return the :class:`Branch` called ``name``.

    Raises:
        UnknownBranchError: no such branch; the message lists the known ones.

    """
    if name not in _LOADED:
        if name not in _BUILTIN:
            raise UnknownBranchError(f'Unknown branch {name!r}; known: '
                                     f'{", ".join(branch_names())}.')
        _LOADED[name] = _BUILTIN[name]()
    return _LOADED[name]


def get_branches(names):
    """Return the :class:`Branch` of each name, in order (``names``: a list or 'a,b')."""
    if isinstance(names, str):
        names = [n.strip() for n in names.split(',') if n.strip()]
    return [get_branch(n) for n in names]

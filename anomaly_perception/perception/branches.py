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

"""The branches by name: what ``replay``, ``score``, ``bench`` and the nodes look up.

A :class:`Branch` names, as ``module:attribute`` strings imported on first
use (so listing branches loads no model code), the pieces a branch adds:

* ``pipeline``: its :class:`~.pipeline.Pipeline` (stream of messages ->
  results), whose ``detector_class`` is its :class:`~.pipeline.Detector`;
* ``config``: its typed config dataclass (the node's parameters, YAML files
  in ``config/``), with ``config_from_parameters`` and ``parameter_specs``
  beside it in the same module;
* ``messages``: its ``io/`` module of output messages (``NODE_NAME``,
  ``OUTPUT_TYPES``, ``output_topics(namespace)`` and a builder whose
  ``outputs(header, result)`` returns ``{key: message}``);
* ``shipped_model``: the model directory under ``models/`` it runs by default.

Adding a branch is one entry here plus its own modules; the commands and
the node base need no edit.
"""

import dataclasses
import importlib

from ..errors import AnomalyPerceptionError


class UnknownBranchError(AnomalyPerceptionError, ValueError):
    """A branch name that is not registered."""


def _resolve(path):
    module, _, attr = path.partition(':')
    loaded = importlib.import_module(module)
    return getattr(loaded, attr) if attr else loaded


@dataclasses.dataclass(frozen=True)
class Branch:
    """One branch's pieces, by import path (see module docs)."""

    name: str
    description: str
    pipeline: str
    config: str
    messages: str
    builder: str
    shipped_model: str

    @property
    def pipeline_class(self):
        return _resolve(self.pipeline)

    @property
    def detector_class(self):
        return self.pipeline_class.detector_class

    @property
    def config_class(self):
        return _resolve(self.config)

    @property
    def config_module(self):
        return importlib.import_module(self.config.partition(':')[0])

    @property
    def messages_module(self):
        return _resolve(self.messages)

    @property
    def builder_class(self):
        return _resolve(self.builder)

    def shipped_model_dir(self):
        """Return the branch's shipped model directory (ModelError if absent)."""
        from ..runtime.manifest import shipped_model_dir
        return shipped_model_dir(self.shipped_model)


BRANCHES = {
    'frame': Branch(
        name='frame', description='per-frame anomaly score and hazard flag (RNVP+OE)',
        pipeline='anomaly_perception.perception.frame_stream:FrameStream',
        config='anomaly_perception.perception.frame_config:FrameNodeConfig',
        messages='anomaly_perception.io.frame_messages',
        builder='anomaly_perception.io.frame_messages:FrameMessageBuilder',
        shipped_model='frame_rnvp_oe'),
    'pixel': Branch(
        name='pixel', description='per-pixel anomaly map, mask and semantic ids (ERFNet)',
        pipeline='anomaly_perception.perception.pixel_stream:PixelStream',
        config='anomaly_perception.perception.pixel_config:PixelNodeConfig',
        messages='anomaly_perception.io.pixel_messages',
        builder='anomaly_perception.io.pixel_messages:PixelMessageBuilder',
        shipped_model='pixel_erfnet'),
    'instance': Branch(
        name='instance', description='anomaly instances on keyframes, placed on the floor '
        '(UGainS: pixel map -> farthest-point prompts -> promptable segmenter)',
        pipeline='anomaly_perception.perception.instance_stream:InstanceStream',
        config='anomaly_perception.perception.instance_config:InstanceNodeConfig',
        messages='anomaly_perception.io.instance_messages',
        builder='anomaly_perception.io.instance_messages:InstanceMessageBuilder',
        shipped_model='instance_sam_small'),
    'synthesis': Branch(
        name='synthesis', description='anomalies by synthesis on keyframes, offline: a DDPM '
        'of the normal world edits the frame, the input-edit distance is the map',
        pipeline='anomaly_perception.perception.synthesis_stream:SynthesisStream',
        config='anomaly_perception.perception.synthesis_config:SynthesisConfig',
        messages='anomaly_perception.io.synthesis_messages',
        builder='anomaly_perception.io.synthesis_messages:SynthesisMessageBuilder',
        shipped_model='synthesis_ddpm'),
}


def get_branch(name):
    """Return the :class:`Branch` called ``name``.

    Raises:
        UnknownBranchError: no such branch; the message lists the known ones.

    """
    try:
        return BRANCHES[name]
    except KeyError:
        raise UnknownBranchError(f'Unknown branch {name!r}; known: '
                                 f'{", ".join(sorted(BRANCHES))}.') from None


def branch_names():
    """Return the registered branch names."""
    return sorted(BRANCHES)

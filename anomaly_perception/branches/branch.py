"""What a branch is made of: :class:`Branch`, the one record every command reads.

A branch's folder ends in ``branch.py``, which builds its ``BRANCH``; the
registry (:mod:`.registry`) lists them by name. ``replay``, ``score``,
``bench``, the replay summary, ``demo`` and the node base read a branch
only through these fields, so a new branch needs no edit anywhere else.
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
import types

from ..errors import AnomalyPerceptionError


class UnknownBranchError(AnomalyPerceptionError, ValueError):
    """A branch name that is not registered."""


@dataclasses.dataclass(frozen=True)
class Branch:
    """One branch's pieces.

    Attributes:
        name: the branch's name (``--pipelines``, ``--branch``, manifests'
            ``branch``).
        description: one line for ``--help`` and the docs.
        config: the node's parameters, a dataclass (YAML files in
            ``config/``, ROS parameters).
        config_module: the module beside it with ``parameter_specs()``,
            ``config_from_parameters(values, source)`` and
            ``parameter_file()``.
        stream: the node and replay path, a
            :class:`~..stream.pipeline.Pipeline` (``from_config(config)``,
            ``process(stamps, images)``, ``detector``, ``decode``).
        messages: the module of output messages: ``NODE_NAME``,
            ``OUTPUT_TYPES``, ``DIAGNOSTICS_TYPE``,
            ``output_topics(namespace)``.
        builder: the message builder, ``from_config(factory, config)``,
            ``outputs(header, result)`` -> ``{key: message}``.
        recorder: the replay's :class:`~..replay.recorder.Recorder`: what
            replay keeps, its metrics and plots, its summary lines.
        shipped_model: the directory under ``models/`` it runs by default, or
            one of ``model_free``.
        score: ``score(model_dir, files, args)`` -> exit code, what ``score
            --branch NAME`` writes per image; or a sentence saying where to
            go instead (a branch ``score`` cannot serve).
        bench: None when ``bench`` times its detector per backend, as for any
            one-graph branch; or a sentence saying where its speed is measured.
        node: the ROS 2 executable that runs it (None: offline only).
        exportable: whether its model has one ONNX graph (``export``).
        model_free: model names its detector loads without a directory (the
            instance branch's ``components``: no promptable model).
    """

    name: str
    description: str
    config: type
    config_module: types.ModuleType
    stream: type
    messages: types.ModuleType
    builder: type
    recorder: type
    shipped_model: str
    score: object = None
    bench: object = None
    node: object = None
    exportable: bool = True
    model_free: tuple = ()

    @property
    def detector(self):
        """Return the detector class its stream runs (the small predictor API)."""
        return self.stream.detector_class

    @property
    def offline_only(self):
        """Return True for a branch with no node (it runs in ``replay`` only)."""
        return self.node is None

    def shipped_model_dir(self):
        """Return the branch's default model directory (ModelError if absent).

        A name in ``model_free`` is returned as it is: the detector loads it
        without a directory.
        """
        from ..runtime.manifest import shipped_model_dir
        if self.shipped_model in self.model_free:
            return self.shipped_model
        return shipped_model_dir(self.shipped_model)

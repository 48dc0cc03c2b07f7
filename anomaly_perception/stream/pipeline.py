"""The one interface every branch's inference implements, and what they share.

A branch's inference is written once, in two layers that the node,
``replay``, ``score`` and ``bench`` all call (so what is measured offline is
what runs on the robot):

* a :class:`Detector` wraps a model directory on a backend: uint8 images of
  any size (one, a batch or a list) -> the branch's scores for each
  (``score``), or the model's input (``preprocess``, for timing the model
  alone through ``backend.infer``);
* a :class:`Pipeline` runs a detector over a stream of image messages:
  ``decode(msg)`` (stamp checked, RGB out, :class:`ImageMessageError` when
  malformed) then ``process(stamps, images)`` -> one result per frame, in
  stamp order, with whatever state the branch keeps over time (the frame
  branch's hazard filter). The branch's message builder (``io/``) turns a
  result into messages carrying the input header.

Branches are found by name in :mod:`..branches.registry`; decoding a
message is :func:`..io.images.decode_frame`.
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

import abc

from ..io.images import decode_frame
from ..io.images import message_stamp


class Detector(abc.ABC):
    """A model directory on a backend: images -> scores (see module docs)."""

    backend = None      # runtime.backends.Backend: ``infer(model input)``, ``describe()``
    manifest = None     # the model's manifest dict

    @classmethod
    @abc.abstractmethod
    def from_model_dir(cls, model_dir, backend='torch', **options):
        """Load ``model_dir`` and run it on ``backend`` (see runtime.backends)."""

    @abc.abstractmethod
    def preprocess(self, images, channel_order='rgb'):
        """Images as :meth:`score` takes them -> the model's input batch."""

    @abc.abstractmethod
    def score(self, images, channel_order='rgb'):
        """Score one image ``uint8 [H, W, 3]``, a batch or a list (ImageInputError if bad)."""

    @property
    def name(self):
        return (self.manifest or {}).get('name', type(self).__name__)


class Pipeline(abc.ABC):
    """A detector over a stream of image messages (see module docs)."""

    detector_class = None   # its Detector
    shipped_model = None    # the model directory under models/ it runs by default
    detector = None
    config = None
    model_dir = None

    def __init__(self, detector, config):
        self.detector = detector
        self.config = config

    @classmethod
    def from_config(cls, config, model_dir=None, **backend_options):
        """Load the model ``config`` names (or ``model_dir``) on its backend.

        This is the one-model case (``config`` has ``model_dir``, ``backend``,
        ``device`` and ``target_fpr``); a branch with more models overrides it.

        Raises:
            ModelError: a missing or corrupt model file (named).
            BackendError: the backend is not available.

        """
        from ..runtime.manifest import shipped_model_dir
        model_dir = model_dir or config.model_dir or shipped_model_dir(cls.shipped_model)
        detector = cls.detector_class.from_model_dir(
            model_dir, config.backend, device=config.device, target_fpr=config.target_fpr,
            **backend_options)
        stream = cls(detector, config)
        stream.model_dir = str(model_dir)
        return stream

    @abc.abstractmethod
    def process(self, stamps, images):
        """Process frames (RGB ``uint8 [H, W, 3]`` each) in stamp order; one result each."""

    def reconfigure(self, config):
        """Apply live parameter changes without reloading the model."""
        self.config = config

    @property
    def name(self):
        return self.detector.name

    @staticmethod
    def decode(msg):
        """Check the stamp and decode ``msg``; return RGB ``uint8 [H, W, 3]``.

        Raises:
            ImageMessageError: see :func:`message_stamp` and :func:`decode_frame`.

        """
        message_stamp(msg)
        return decode_frame(msg)

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

Branches are found by name in :mod:`.branches`.
"""

import abc

import numpy as np

from .preprocess import MIN_IMAGE_SIDE
from ..errors import ImageMessageError
from ..io.images import compressed_to_numpy
from ..io.images import image_to_numpy
from ..io.messages import stamp_to_ns


def message_stamp(msg):
    """Return the header stamp of ``msg`` in ns.

    Raises:
        ImageMessageError (kind ``'missing stamp'``): no header, or a zero
            stamp (a driver that never set it): outputs could not be matched
            to their frame and the hazard filter could not keep time.

    """
    try:
        stamp = stamp_to_ns(msg.header.stamp)
    except (AttributeError, TypeError, ValueError):
        raise ImageMessageError('the image has no usable header stamp.',
                                'missing stamp') from None
    if stamp <= 0:
        raise ImageMessageError('the image header stamp is zero (the camera driver did not '
                                "set it); outputs need the frame's stamp.", 'missing stamp')
    return stamp


def is_compressed(msg):
    """Tell a CompressedImage (``format`` field, True) from an Image (False)."""
    return hasattr(msg, 'format') and not hasattr(msg, 'encoding')


def decode_frame(msg):
    """Decode an Image or CompressedImage message into RGB ``uint8 [H, W, 3]``.

    Colour encodings of 16 bits per channel (``bayer_*16``) keep their 8
    most significant bits, as cv_bridge's conversion to ``rgb8`` does.

    Raises:
        ImageMessageError: with a ``kind`` for diagnostics (unknown encoding,
            empty image, wrong data length, undecodable data, not a colour
            image, image too small...).

    """
    image = compressed_to_numpy(msg) if is_compressed(msg) else image_to_numpy(msg)
    what = getattr(msg, 'encoding', None) or getattr(msg, 'format', '?')
    if image.ndim != 3 or image.shape[2] != 3:
        raise ImageMessageError(f'the models need a colour image; got {what!r} '
                                f'({"x".join(map(str, image.shape))}).', 'not a colour image')
    if image.shape[0] < MIN_IMAGE_SIDE or image.shape[1] < MIN_IMAGE_SIDE:
        raise ImageMessageError(f'a {image.shape[1]}x{image.shape[0]} {what!r} image is too '
                                f'small to score (at least {MIN_IMAGE_SIDE}x{MIN_IMAGE_SIDE}).',
                                'image too small')
    if image.dtype == np.uint16:
        image = (image >> 8).astype(np.uint8)
    return image


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

    detector = None
    config = None
    model_dir = None

    @classmethod
    @abc.abstractmethod
    def from_config(cls, config, model_dir=None, **backend_options):
        """Load the model ``config`` names (or ``model_dir``) on its backend.

        Raises:
            ModelError: a missing or corrupt model file (named).
            BackendError: the backend is not available.

        """

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

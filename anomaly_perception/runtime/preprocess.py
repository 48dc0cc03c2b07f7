"""Image preprocessing shared by training and inference.

A frame model has a fixed input shape ``(height, width)``: square for the
models trained on the Robomaster dataset's 512x512 crops, 64x112 (close to
16:9) for models trained on a robot's own 640x360 camera, so that the whole
view is seen (a centre square of a 16:9 frame discards 44% of it). A camera
frame of any aspect ratio is centre-cropped to the model's aspect ratio
(a no-op or a few pixels when they match), then resized with pixel-area
averaging, so what the model sees on the robot is what it saw in training.
The manifest's ``preprocessing`` records the shape and the crop
(:func:`~anomaly_perception.runtime.manifest.model_input_shape` reads it).

``crop: letterbox`` (pixel models, and frame models learnt from bags) sees
every pixel instead: the frame is resized to fit inside the input whole,
and the bands left over are filled by mirroring the image's edge
(:func:`letterbox`). A 640x480 frame fills the middle 192 columns of a
144x256 input; :func:`content_box` says where, and :func:`from_input`
maps a model-resolution map back onto the whole frame, so a map always has
the image's size and no blind band.
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

import cv2
import numpy as np

from ..errors import AnomalyPerceptionError
from ..io.images import MIN_IMAGE_SIDE


class ImageInputError(AnomalyPerceptionError, ValueError):
    """Images handed to a pipeline have the wrong type, shape or size."""


def check_rgb_image(image, what='image'):
    """Check one uint8 ``[H, W, 3]`` image; raise :class:`ImageInputError` otherwise."""
    if not isinstance(image, np.ndarray):
        raise ImageInputError(f'{what} must be a numpy array, got {type(image).__name__}.')
    if image.dtype != np.uint8:
        raise ImageInputError(f'{what} must be uint8 (0-255), got {image.dtype}.')
    if image.ndim != 3 or image.shape[2] != 3:
        raise ImageInputError(f'{what} must have shape [H, W, 3], got {list(image.shape)}.')
    if image.shape[0] < MIN_IMAGE_SIDE or image.shape[1] < MIN_IMAGE_SIDE:
        raise ImageInputError(f'{what} is too small: {image.shape[1]}x{image.shape[0]}.')


def as_shape(size):
    """``(height, width)`` from an int (square) or a pair."""
    if isinstance(size, (int, np.integer)):
        return int(size), int(size)
    height, width = size
    return int(height), int(width)


def crop_box(height, width, aspect):
    """``(y0, x0, h, w)`` of the largest centred crop with width/height ``aspect``."""
    if width > height * aspect:
        cw, ch = max(1, int(round(height * aspect))), height
    else:
        cw, ch = width, max(1, int(round(width / aspect)))
    return (height - ch) // 2, (width - cw) // 2, ch, cw


def center_crop(image, aspect):
    """Return the largest centred crop of ``[H, W, C]`` with width/height ``aspect`` (a view)."""
    y0, x0, ch, cw = crop_box(*image.shape[:2], aspect)
    return image[y0:y0 + ch, x0:x0 + cw]


def center_square(image):
    """Return the largest centred square crop of ``[H, W, C]`` (a view, no copy)."""
    return center_crop(image, 1.0)


def fit_resize(image, size):
    """Centre-crop to the aspect of ``size`` (int or ``(h, w)``), then resize to it.

    Downsizing averages pixel areas (as in training); upsizing is bilinear.
    """
    height, width = as_shape(size)
    crop = center_crop(image, width / height)
    if crop.shape[:2] == (height, width):
        return np.ascontiguousarray(crop)
    interp = cv2.INTER_AREA if crop.shape[0] > height else cv2.INTER_LINEAR
    return cv2.resize(crop, (width, height), interpolation=interp)


LETTERBOX = 'letterbox'


def content_box(height, width, size):
    """``(y0, x0, h, w)``: where a ``height x width`` frame lies in its letterboxed input."""
    in_h, in_w = as_shape(size)
    scale = min(in_h / height, in_w / width)
    h = min(in_h, max(1, int(round(height * scale))))
    w = min(in_w, max(1, int(round(width * scale))))
    return (in_h - h) // 2, (in_w - w) // 2, h, w


def _fit(image, height, width, interp=None):
    if image.shape[:2] == (height, width):
        return np.ascontiguousarray(image)
    if interp is None:
        interp = cv2.INTER_AREA if height < image.shape[0] else cv2.INTER_LINEAR
    return cv2.resize(image, (width, height), interpolation=interp)


def letterbox(image, size, *, fill=None, interp=None):
    """Resize ``image`` to fit inside ``size`` whole, aspect kept; pad the rest.

    The bands are the image's edge mirrored (``fill=None``: closer to what
    the model saw in training than a flat colour; their scores are dropped),
    or the constant ``fill`` (label maps: void). ``interp`` defaults to
    pixel-area averaging when shrinking, bilinear when enlarging
    (``cv2.INTER_NEAREST`` for label maps).
    """
    y0, x0, h, w = content_box(*image.shape[:2], size)
    in_h, in_w = as_shape(size)
    small = _fit(image, h, w, interp)
    if (h, w) == (in_h, in_w):
        return small
    pads = (y0, in_h - h - y0, x0, in_w - w - x0)
    if fill is not None:
        return cv2.copyMakeBorder(small, *pads, cv2.BORDER_CONSTANT, value=fill)
    # Mirroring needs bands narrower than the picture; wider ones repeat the edge.
    mode = cv2.BORDER_REFLECT_101 if max(pads[:2]) < h and max(pads[2:]) < w \
        else cv2.BORDER_REPLICATE
    return cv2.copyMakeBorder(small, *pads, mode)


def from_input(values, image_size, *, interp=cv2.INTER_LINEAR, letterboxed=True):
    """Map a model-resolution map ``[h, w]`` back onto a frame of ``image_size`` (h, w).

    With ``letterboxed``, the frame's part of the input is cut out and
    resized: every pixel of the frame gets a value.
    """
    height, width = image_size
    if letterboxed:
        y0, x0, h, w = content_box(height, width, values.shape[:2])
        values = values[y0:y0 + h, x0:x0 + w]
    return _fit(values, height, width, interp)


def model_input(image, size, crop):
    """Resize a frame for a model by its manifest's ``crop`` (letterbox, else centre crop)."""
    return letterbox(image, size) if crop == LETTERBOX else fit_resize(image, size)


def square_resize(image, size):
    """Centre-crop to a square and resize to ``size x size`` by pixel-area averaging."""
    return fit_resize(image, (size, size))


def as_batch(images, channel_order='rgb', what='images'):
    """Normalise the accepted inputs to a list of RGB uint8 ``[H, W, 3]`` arrays.

    Accepts one ``[H, W, 3]`` image, a ``[N, H, W, 3]`` batch, or a list of
    images (sizes may differ). ``channel_order`` is ``'rgb'`` or ``'bgr'``.

    Raises:
        ImageInputError: wrong dtype, channel count, or an empty batch.

    """
    if channel_order not in ('rgb', 'bgr'):
        raise ImageInputError(f"channel_order must be 'rgb' or 'bgr', got {channel_order!r}.")
    if isinstance(images, np.ndarray):
        if images.ndim == 3:
            items = [images]
        elif images.ndim == 4:
            items = list(images)
        else:
            raise ImageInputError(f'{what} must be [H, W, 3] or [N, H, W, 3], got shape '
                                  f'{list(images.shape)}.')
    elif isinstance(images, (list, tuple)):
        items = list(images)
    else:
        raise ImageInputError(f'{what} must be a numpy array or a list of them, got '
                              f'{type(images).__name__}.')
    if not items:
        raise ImageInputError(f'{what}: empty batch, nothing to score.')
    for i, image in enumerate(items):
        check_rgb_image(image, f'{what}[{i}]')
    if channel_order == 'bgr':
        items = [image[..., ::-1] for image in items]
    return items

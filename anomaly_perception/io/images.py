"""Image messages <-> numpy arrays.

Written against message *fields* (``height``, ``width``, ``encoding``,
``is_bigendian``, ``step``, ``data``; ``format`` and ``data`` for
CompressedImage), so the same functions convert rclpy messages and the
message classes of a ``rosbags`` type store.

Decoding conventions (:func:`image_to_numpy`):

* colour encodings (``rgb8``, ``bgr8``, ``rgba8``, ``bgra8``, ``8UC3`` and
  the Bayer family) become RGB ``uint8 [H, W, 3]`` (``output='rgb'``, the
  default), BGR with ``output='bgr'``; alpha is dropped; Bayer mosaics are
  demosaiced (16-bit Bayer gives ``uint16``);
* single-channel encodings (``mono8``, ``8UC1``, ``mono16``, ``16UC1``,
  ``32FC1``) keep their native type as ``[H, W]``;
* ``output='passthrough'`` returns the stored layout unchanged
  (``[H, W]`` or ``[H, W, C]``, native byte order);
* ``8UC3`` carries no channel order; it is taken as BGR, the OpenCV
  convention that cv_bridge also follows;
* padded rows (``step > width * bytes_per_pixel``) and big-endian data are
  handled; the pixels are copied at most once (none at all when the stored
  layout is already the requested one, unless ``copy=True``). The one
  exception is big-endian 16-bit Bayer, which is byte-swapped, then
  demosaiced;
* without a copy, the returned array is a read-only view of the message
  buffer.
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
import io
from pathlib import Path

import cv2
import numpy as np
from PIL import Image as PILImage

from .messages import stamp_to_ns
from ..errors import ImageMessageError


@dataclasses.dataclass(frozen=True)
class Encoding:
    """Memory layout of one ``sensor_msgs/Image`` encoding."""

    name: str
    dtype: str          # numpy base type, without byte order: 'u1', 'u2', 'f4'
    channels: int
    layout: str         # 'rgb', 'bgr', 'rgba', 'bgra', 'mono' or 'bayer'
    bayer_to_rgb: int = -1  # OpenCV demosaicing code for Bayer encodings

    @property
    def bytes_per_pixel(self):
        return np.dtype(self.dtype).itemsize * self.channels


# OpenCV names a Bayer pattern by the second row's 2nd and 3rd pixels, so the
# ROS 'rggb' pattern is OpenCV's 'BG' (the mapping cv_bridge uses).
_BAYER = {
    'rggb': cv2.COLOR_BayerBG2RGB,
    'bggr': cv2.COLOR_BayerRG2RGB,
    'gbrg': cv2.COLOR_BayerGR2RGB,
    'grbg': cv2.COLOR_BayerGB2RGB,
}

ENCODINGS = {
    e.name: e
    for e in [
        Encoding('rgb8', 'u1', 3, 'rgb'),
        Encoding('bgr8', 'u1', 3, 'bgr'),
        Encoding('rgba8', 'u1', 4, 'rgba'),
        Encoding('bgra8', 'u1', 4, 'bgra'),
        Encoding('mono8', 'u1', 1, 'mono'),
        Encoding('mono16', 'u2', 1, 'mono'),
        Encoding('8UC1', 'u1', 1, 'mono'),
        Encoding('8UC3', 'u1', 3, 'bgr'),
        Encoding('16UC1', 'u2', 1, 'mono'),
        Encoding('32FC1', 'f4', 1, 'mono'),
        *(Encoding(f'bayer_{p}8', 'u1', 1, 'bayer', code) for p, code in _BAYER.items()),
        *(Encoding(f'bayer_{p}16', 'u2', 1, 'bayer', code) for p, code in _BAYER.items()),
    ]
}

OUTPUTS = ('rgb', 'bgr', 'passthrough')

_TO_RGB = {
    ('bgr', 'rgb'): cv2.COLOR_BGR2RGB,
    ('rgb', 'bgr'): cv2.COLOR_RGB2BGR,
    ('rgba', 'rgb'): cv2.COLOR_RGBA2RGB,
    ('rgba', 'bgr'): cv2.COLOR_RGBA2BGR,
    ('bgra', 'rgb'): cv2.COLOR_BGRA2RGB,
    ('bgra', 'bgr'): cv2.COLOR_BGRA2BGR,
}


def encoding_info(name):
    """Return the :class:`Encoding` for ``name``.

    Raises:
        ImageMessageError: the encoding is not supported.

    """
    try:
        return ENCODINGS[name]
    except KeyError:
        raise ImageMessageError(
            f'Unsupported image encoding {name!r}; supported: {", ".join(ENCODINGS)}.',
            'unknown encoding') from None


def _byte_view(data):
    """View any bytes-like message payload (bytes, array.array, ndarray) as uint8."""
    if isinstance(data, np.ndarray):
        return data.reshape(-1).view(np.uint8) if data.dtype.itemsize == 1 else (
            np.ascontiguousarray(data).reshape(-1).view(np.uint8))
    if isinstance(data, (list, tuple)):
        return np.asarray(data, dtype=np.uint8)
    return np.frombuffer(memoryview(data), dtype=np.uint8)


def _check_output(output):
    if output not in OUTPUTS:
        raise ValueError(f'output must be one of {OUTPUTS}, got {output!r}')


def image_to_numpy(msg, *, output='rgb', copy=False):
    """Decode a ``sensor_msgs/Image`` into a numpy array.

    Args:
        msg: any object with the fields of ``sensor_msgs/msg/Image``.
        output: ``'rgb'``, ``'bgr'`` or ``'passthrough'`` (see module docs).
        copy: always return an array that owns its memory (and is writable).

    Returns:
        ``uint8 [H, W, 3]`` RGB (or BGR) for colour encodings; ``[H, W]`` in
        the native type for single-channel encodings; the stored layout for
        ``'passthrough'``.

    Raises:
        ImageMessageError: unknown encoding, zero size, ``step`` too small,
            or a data length that disagrees with ``height * step``.

    """
    _check_output(output)
    enc = encoding_info(msg.encoding)
    height, width, step = int(msg.height), int(msg.width), int(msg.step)
    if height <= 0 or width <= 0:
        raise ImageMessageError(
            f'Image is empty ({width}x{height}, encoding {enc.name!r}); '
            'expected width and height > 0.', 'empty image')
    row_bytes = width * enc.bytes_per_pixel
    if step < row_bytes:
        raise ImageMessageError(
            f'Image step {step} is smaller than width * bytes per pixel = '
            f'{width} * {enc.bytes_per_pixel} = {row_bytes} ({enc.name}).', 'step too small')
    buf = _byte_view(msg.data)
    if buf.size != height * step:
        raise ImageMessageError(
            f'Image data has {buf.size} bytes but height * step = {height} * {step} = '
            f'{height * step} ({width}x{height} {enc.name}).', 'wrong data length')

    rows = buf.reshape(height, step)[:, :row_bytes]
    itemsize = np.dtype(enc.dtype).itemsize
    copied = False
    if itemsize > 1:
        order = '>' if msg.is_bigendian else '<'
        pixels = rows.view(np.dtype(order + enc.dtype))
        if not pixels.dtype.isnative:
            pixels = pixels.astype(pixels.dtype.newbyteorder('='))
            copied = True
    else:
        pixels = rows
    shape = (height, width) if enc.channels == 1 else (height, width, enc.channels)
    pixels = pixels.reshape(shape)

    if output == 'passthrough' or enc.layout == 'mono':
        return pixels.copy() if copy and not copied else pixels
    if enc.layout == 'bayer':
        rgb = cv2.cvtColor(pixels, enc.bayer_to_rgb)
        return rgb if output == 'rgb' else cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR, dst=rgb)
    if enc.layout == output:
        return pixels.copy() if copy else pixels
    return cv2.cvtColor(pixels, _TO_RGB[(enc.layout, output)])


def numpy_to_image_fields(array, encoding, *, step=None, bigendian=False):
    """Return the fields of a ``sensor_msgs/Image`` holding ``array``.

    The array must already be in the layout ``encoding`` names (``bgr8``
    takes BGR, ``bayer_rggb8`` takes the raw mosaic); nothing is converted or
    cast silently.

    Args:
        array: ``[H, W]`` or ``[H, W, C]`` with the encoding's dtype.
        encoding: one of :data:`ENCODINGS`.
        step: row length in bytes; larger than ``W * bytes_per_pixel`` pads
            rows with zeros (what some camera drivers publish).
        bigendian: store multi-byte pixels big-endian.

    Returns:
        dict with ``height``, ``width``, ``encoding``, ``is_bigendian``,
        ``step`` and ``data`` (``uint8`` 1-D array).

    Raises:
        ImageMessageError: the array's shape or dtype does not fit the encoding.

    """
    enc = encoding_info(encoding)
    array = np.asarray(array)
    if enc.channels == 1 and array.ndim == 3 and array.shape[2] == 1:
        array = array[:, :, 0]
    expected_ndim = 2 if enc.channels == 1 else 3
    if array.ndim != expected_ndim or (expected_ndim == 3 and array.shape[2] != enc.channels):
        want = '[H, W]' if enc.channels == 1 else f'[H, W, {enc.channels}]'
        raise ImageMessageError(
            f'Encoding {enc.name!r} needs an array of shape {want}, got {list(array.shape)}.'
        )
    want = np.dtype(enc.dtype)
    if array.dtype.kind != want.kind or array.dtype.itemsize != want.itemsize:
        raise ImageMessageError(
            f'Encoding {enc.name!r} needs dtype {want.name}, '
            f'got {array.dtype.name}.'
        )
    height, width = array.shape[:2]
    if height == 0 or width == 0:
        raise ImageMessageError(f'Cannot encode an empty image ({width}x{height}).')
    row_bytes = width * enc.bytes_per_pixel
    step = row_bytes if step is None else int(step)
    if step < row_bytes:
        raise ImageMessageError(f'step {step} is smaller than the row size {row_bytes}.')
    stored = array.astype(np.dtype(('>' if bigendian else '<') + enc.dtype), copy=False)
    raw = np.ascontiguousarray(stored).reshape(height, row_bytes // stored.dtype.itemsize)
    raw = raw.view(np.uint8)
    if step > row_bytes:
        padded = np.zeros((height, step), dtype=np.uint8)
        padded[:, :row_bytes] = raw
        raw = padded
    return {
        'height': height,
        'width': width,
        'encoding': enc.name,
        'is_bigendian': int(bool(bigendian)),
        'step': step,
        'data': raw.reshape(-1),
    }


def numpy_to_image(array, encoding, header, factory, **kwargs):
    """Build a ``sensor_msgs/msg/Image`` with ``factory`` (see :mod:`.messages`).

    ``kwargs`` go to :func:`numpy_to_image_fields`.
    """
    fields = numpy_to_image_fields(array, encoding, **kwargs)
    return factory.new('sensor_msgs/msg/Image', header=header, **fields)


# --- CompressedImage -----------------------------------------------------

COMPRESSED_FORMATS = ('jpeg', 'png')
#: The smallest width and height a pipeline accepts.
MIN_IMAGE_SIDE = 2


def _parse_format(fmt):
    """Split an image_transport format string into (original encoding, codec).

    Accepts the plain codec (``'jpeg'``, ``'png'``) and image_transport's
    ``'<encoding>; <codec> compressed <encoding>'``.
    """
    text = fmt.strip().lower()
    if 'compresseddepth' in text:
        raise ImageMessageError(
            f'CompressedImage format {fmt!r} (compressedDepth) is not supported; '
            'publish depth as a raw 16UC1/32FC1 Image.', 'unsupported compressed format')
    original = ''
    if ';' in text:
        original, text = (part.strip() for part in text.split(';', 1))
    codec = text.split()[0] if text else ''
    if codec == 'jpg':
        codec = 'jpeg'
    return original, codec


# Pillow modes whose pixels map one to one onto OpenCV's IMREAD_UNCHANGED result.
_PIL_GREY = {'L': np.uint8, 'I;16': np.uint16, 'I;16B': np.uint16}
_PIL_COLOUR = {'RGB': 3, 'RGBA': 4}


def decode_image_bytes(data, *, what='image data'):
    """Decode JPEG or PNG bytes as OpenCV's ``imdecode(IMREAD_UNCHANGED)`` does, silently.

    Returns ``[H, W]`` (grey, ``uint8`` or ``uint16``) or BGR / BGRA
    ``[H, W, 3|4]``. libjpeg and libpng, as OpenCV calls them, print a
    warning to standard error for every corrupt image ("Corrupt JPEG data",
    "libpng error"), which floods a robot's log when a camera sends
    thousands. Pillow decodes the same files to the same pixels without
    printing, and its reason goes into the error, which the nodes count and
    log once per throttle window. Layouts Pillow cannot hold exactly (16-bit
    colour, CMYK, grey with alpha...) fall back to OpenCV once Pillow has
    read them whole.

    Raises:
        ImageMessageError: the bytes do not decode (kind
            ``'undecodable compressed data'``), with the decoder's reason.

    """
    image, layout = _decode(data, what)
    if layout in ('rgb', 'rgba'):
        return cv2.cvtColor(image, cv2.COLOR_RGB2BGR if layout == 'rgb'
                            else cv2.COLOR_RGBA2BGRA)
    return image


def _decode(data, what):
    """Decode ``data``; return ``(array, layout)``, layout one of grey, rgb, rgba, bgr, bgra."""
    buf = np.frombuffer(data, np.uint8) if not isinstance(data, np.ndarray) else data
    try:
        image = PILImage.open(io.BytesIO(buf))
        # The stored layout (e.g. 'RGB;16B'), known before load() clears the tiles.
        rawmode = image.tile[0][3] if image.tile and len(image.tile[0]) > 3 else None
        image.load()
    except (OSError, ValueError, SyntaxError, PILImage.DecompressionBombError) as err:
        raise ImageMessageError(f'{what} could not be decoded as JPEG or PNG: '
                                f'{str(err) or type(err).__name__}.',
                                'undecodable compressed data') from None
    exact = not (isinstance(rawmode, str) and rawmode.endswith(('16', '16B')) and
                 image.mode in _PIL_COLOUR)
    if exact and image.mode in _PIL_GREY:
        return np.asarray(image, dtype=_PIL_GREY[image.mode]), 'grey'
    if exact and image.mode == '1':
        return np.asarray(image.convert('L')), 'grey'
    if exact and image.mode in _PIL_COLOUR:
        return np.asarray(image), image.mode.lower()
    if exact and image.mode == 'P' and 'transparency' not in image.info:
        return np.asarray(image.convert('RGB')), 'rgb'
    decoded = cv2.imdecode(buf, cv2.IMREAD_UNCHANGED)
    if decoded is None:
        raise ImageMessageError(f'{what} could not be decoded as JPEG or PNG.',
                                'undecodable compressed data')
    if decoded.ndim == 2:
        return decoded, 'grey'
    return decoded, 'bgra' if decoded.shape[2] == 4 else 'bgr'


def compressed_to_numpy(msg, *, output='rgb'):
    """Decode a ``sensor_msgs/CompressedImage`` (JPEG or PNG) into a numpy array.

    Colour images come back as RGB ``uint8 [H, W, 3]`` (BGR with
    ``output='bgr'``; ``'passthrough'`` gives the channel order of the
    original encoding named in the format string, BGR if none is named).
    Grey images come back as ``[H, W]`` (``uint16`` for 16-bit PNG).

    Raises:
        ImageMessageError: empty data, an unsupported format, or bytes that do
            not decode.

    """
    _check_output(output)
    original, codec = _parse_format(msg.format or '')
    buf = _byte_view(msg.data)
    if buf.size == 0:
        raise ImageMessageError(f'CompressedImage (format {msg.format!r}) has no data.',
                                'empty image')
    decoded, layout = _decode(buf, f'CompressedImage (format {msg.format!r}, {buf.size} bytes)')
    if layout == 'grey':
        return decoded
    if output == 'passthrough':
        output = 'rgb' if original.startswith('rgb') else 'bgr'
    # One conversion at most, from the decoder's channel order to the one asked for.
    if layout == output:
        return decoded
    codes = {('rgb', 'bgr'): cv2.COLOR_RGB2BGR, ('bgr', 'rgb'): cv2.COLOR_BGR2RGB,
             ('rgba', 'rgb'): cv2.COLOR_RGBA2RGB, ('rgba', 'bgr'): cv2.COLOR_RGBA2BGR,
             ('bgra', 'rgb'): cv2.COLOR_BGRA2RGB, ('bgra', 'bgr'): cv2.COLOR_BGRA2BGR}
    return cv2.cvtColor(decoded, codes[layout, output])


def numpy_to_compressed_fields(array, *, encoding='bgr8', codec='jpeg', quality=90):
    """Return ``format`` and ``data`` of a CompressedImage holding ``array``.

    Args:
        array: ``uint8 [H, W, 3]`` in the channel order ``encoding`` names
            (``rgb8`` or ``bgr8``), or ``[H, W]`` for ``mono8`` (``uint8``) and
            ``mono16`` / ``16UC1`` (``uint16``, PNG only).
        encoding: encoding of ``array``, recorded in the format string the way
            image_transport does (``'rgb8; jpeg compressed bgr8'``).
        codec: ``'jpeg'`` or ``'png'``.
        quality: JPEG quality 1-100 (ignored for PNG).

    Raises:
        ImageMessageError: unsupported codec/encoding combination or shape.

    """
    if codec not in COMPRESSED_FORMATS:
        raise ImageMessageError(
            f'Unsupported compression {codec!r}; supported: {", ".join(COMPRESSED_FORMATS)}.'
        )
    array = np.asarray(array)
    colour = encoding in ('rgb8', 'bgr8')
    if colour:
        if array.ndim != 3 or array.shape[2] != 3 or array.dtype != np.uint8:
            raise ImageMessageError(
                f'{encoding} compression needs uint8 [H, W, 3], got {array.dtype} '
                f'{list(array.shape)}.'
            )
        bgr = cv2.cvtColor(array, cv2.COLOR_RGB2BGR) if encoding == 'rgb8' else array
        payload, stored = bgr, 'bgr8'
    elif encoding in ('mono8', 'mono16', '16UC1', '8UC1'):
        want = np.uint8 if encoding in ('mono8', '8UC1') else np.uint16
        if array.ndim != 2 or array.dtype != want:
            raise ImageMessageError(
                f'{encoding} compression needs {np.dtype(want).name} [H, W], got '
                f'{array.dtype} {list(array.shape)}.'
            )
        if want == np.uint16 and codec == 'jpeg':
            raise ImageMessageError('16-bit images can only be compressed as PNG.')
        payload, stored = array, 'mono16' if want == np.uint16 else 'mono8'
    else:
        raise ImageMessageError(
            f'Cannot compress encoding {encoding!r}; use rgb8, bgr8, mono8 or mono16.'
        )
    if payload.shape[0] == 0 or payload.shape[1] == 0:
        raise ImageMessageError('Cannot compress an empty image.')
    params = [cv2.IMWRITE_JPEG_QUALITY, int(quality)] if codec == 'jpeg' else []
    ok, data = cv2.imencode('.jpg' if codec == 'jpeg' else '.png', payload, params)
    if not ok:
        raise ImageMessageError(f'OpenCV failed to encode a {codec} image.')
    return {'format': f'{encoding}; {codec} compressed {stored}', 'data': data.reshape(-1)}


def numpy_to_compressed(array, header, factory, **kwargs):
    """Build a ``sensor_msgs/msg/CompressedImage`` with ``factory``."""
    fields = numpy_to_compressed_fields(array, **kwargs)
    return factory.new('sensor_msgs/msg/CompressedImage', header=header, **fields)


def decode_any_image(msg, *, output='rgb'):
    """Decode an Image or a CompressedImage, whichever ``msg`` is."""
    if hasattr(msg, 'format') and not hasattr(msg, 'encoding'):
        return compressed_to_numpy(msg, output=output)
    return image_to_numpy(msg, output=output)


# --- camera frames, as the pipelines take them ---------------------------------------------


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


# --- image files -------------------------------------------------------------------------


def read_image_file(path):
    """Read an image file as BGR ``uint8 [H, W, 3]`` (OpenCV's order).

    Raises:
        ImageMessageError: the file cannot be read or decoded (named).

    """
    try:
        data = Path(path).read_bytes()
    except OSError as err:
        raise ImageMessageError(f'Cannot read image {str(path)!r}: {err.strerror}.',
                                'unreadable file') from None
    try:
        image = decode_image_bytes(data, what=f'Image file {str(path)!r}')
    except ImageMessageError as err:
        raise ImageMessageError(str(err), 'undecodable file') from None
    if image.ndim == 3 and image.shape[2] == 3 and image.dtype == np.uint8:
        return image
    # Other layouts as cv2.imread(IMREAD_COLOR) gives them: 8-bit BGR.
    return cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)


def encode_image(ext, image):
    """Encode ``image`` (BGR, or one channel) as ``ext`` (``'.png'``, ``'.jpg'``) bytes."""
    ok, data = cv2.imencode(ext, image)
    if not ok:
        raise ImageMessageError(f'Cannot encode a {ext} image.', 'unencodable image')
    return data.tobytes()

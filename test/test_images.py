"""Image message <-> numpy conversion, for every supported encoding."""

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

import array
import types

from anomaly_perception.errors import ImageMessageError
from anomaly_perception.io.images import compressed_to_numpy
from anomaly_perception.io.images import ENCODINGS
from anomaly_perception.io.images import image_to_numpy
from anomaly_perception.io.images import numpy_to_compressed
from anomaly_perception.io.images import numpy_to_image
from anomaly_perception.io.images import numpy_to_image_fields
import cv2
import numpy as np
import pytest
from rosbags.image import message_to_cvimage

RAW = {
    'rgb8': (np.uint8, 3), 'bgr8': (np.uint8, 3), 'rgba8': (np.uint8, 4),
    'bgra8': (np.uint8, 4), 'mono8': (np.uint8, 1), 'mono16': (np.uint16, 1),
    '8UC1': (np.uint8, 1), '8UC3': (np.uint8, 3), '16UC1': (np.uint16, 1),
    '32FC1': (np.float32, 1),
}


def _random(rng, dtype, channels, h=7, w=5):
    shape = (h, w) if channels == 1 else (h, w, channels)
    if dtype == np.float32:
        return rng.normal(size=shape).astype(np.float32)
    return rng.integers(0, np.iinfo(dtype).max, size=shape, endpoint=True).astype(dtype)


def test_every_listed_encoding_is_supported():
    listed = set(RAW) | {f'bayer_{p}{b}' for p in ('rggb', 'bggr', 'gbrg', 'grbg')
                         for b in (8, 16)}
    assert listed <= set(ENCODINGS)


@pytest.mark.parametrize('encoding', sorted(RAW))
@pytest.mark.parametrize('pad', [0, 13])
@pytest.mark.parametrize('bigendian', [False, True])
def test_raw_round_trip(factory, rng, encoding, pad, bigendian):
    dtype, channels = RAW[encoding]
    pixels = _random(rng, dtype, channels)
    itemsize = np.dtype(dtype).itemsize
    step = 5 * channels * itemsize + pad
    header = factory.header(123_456_789_012, 'cam')
    msg = numpy_to_image(pixels, encoding, header, factory, step=step, bigendian=bigendian)
    assert (msg.height, msg.width, msg.step) == (7, 5, step)
    assert len(msg.data) == 7 * step
    # Serialise through CDR as a bag would, then decode.
    raw = factory.typestore.serialize_cdr(msg, 'sensor_msgs/msg/Image')
    msg = factory.typestore.deserialize_cdr(raw, 'sensor_msgs/msg/Image')
    back = image_to_numpy(msg, output='passthrough')
    assert back.dtype == np.dtype(dtype) and back.dtype.isnative
    np.testing.assert_array_equal(back, pixels)


@pytest.mark.parametrize('encoding,expected', [
    ('rgb8', lambda a: a), ('bgr8', lambda a: a[..., ::-1]), ('8UC3', lambda a: a[..., ::-1]),
    ('rgba8', lambda a: a[..., :3]), ('bgra8', lambda a: a[..., 2::-1]),
])
def test_colour_encodings_decode_to_rgb(factory, rng, encoding, expected):
    pixels = _random(rng, np.uint8, RAW[encoding][1])
    msg = numpy_to_image(pixels, encoding, factory.header(0, 'cam'), factory, step=None)
    rgb = image_to_numpy(msg)
    assert rgb.shape == (7, 5, 3) and rgb.dtype == np.uint8
    np.testing.assert_array_equal(rgb, expected(pixels))
    np.testing.assert_array_equal(image_to_numpy(msg, output='bgr'), expected(pixels)[..., ::-1])


@pytest.mark.parametrize('encoding', ['mono8', 'mono16', '16UC1', '32FC1', '8UC1'])
def test_single_channel_keeps_native_type(factory, rng, encoding):
    dtype, _ = RAW[encoding]
    pixels = _random(rng, dtype, 1)
    msg = numpy_to_image(pixels, encoding, factory.header(0, 'cam'), factory, bigendian=True)
    out = image_to_numpy(msg)
    assert out.shape == (7, 5) and out.dtype == np.dtype(dtype)
    np.testing.assert_array_equal(out, pixels)


def test_rgb8_without_padding_is_not_copied(factory, rng):
    pixels = _random(rng, np.uint8, 3)
    msg = numpy_to_image(pixels, 'rgb8', factory.header(0, 'cam'), factory)
    out = image_to_numpy(msg)
    assert np.shares_memory(out, msg.data)
    owned = image_to_numpy(msg, copy=True)
    assert not np.shares_memory(owned, msg.data) and owned.flags.writeable


def test_rclpy_style_message_with_array_data(rng):
    """Decode an rclpy-style message: uint8[] is an array.array('B') there."""
    pixels = _random(rng, np.uint8, 3)
    fields = numpy_to_image_fields(pixels[..., ::-1], 'bgr8', step=5 * 3 + 1)
    msg = types.SimpleNamespace(**{**fields, 'data': array.array('B', fields['data'].tobytes())})
    np.testing.assert_array_equal(image_to_numpy(msg), pixels)


def _mosaic(rgb, pattern):
    """Sample an RGB image with a Bayer colour filter named like the ROS encoding."""
    idx = {'r': 0, 'g': 1, 'b': 2}
    out = np.zeros(rgb.shape[:2], rgb.dtype)
    for k, (dy, dx) in enumerate([(0, 0), (0, 1), (1, 0), (1, 1)]):
        out[dy::2, dx::2] = rgb[dy::2, dx::2, idx[pattern[k]]]
    return out


@pytest.mark.parametrize('pattern', ['rggb', 'bggr', 'gbrg', 'grbg'])
@pytest.mark.parametrize('bits', [8, 16])
def test_bayer_demosaics_to_rgb(factory, pattern, bits):
    # A smooth colour image survives mosaicing + demosaicing almost unchanged,
    # so a wrong pattern mapping (swapped red/blue) shows as a large error.
    yy, xx = np.mgrid[0:32, 0:48]
    scale = 255 if bits == 8 else 65535
    dtype = np.uint8 if bits == 8 else np.uint16
    rgb = np.stack([xx / 47, yy / 31, 1 - xx / 47 * 0.5], -1) * scale * 0.8 + scale * 0.1
    rgb = rgb.astype(dtype)
    encoding = f'bayer_{pattern}{bits}'
    for bigendian in (False, True):
        msg = numpy_to_image(_mosaic(rgb, pattern), encoding, factory.header(0, 'c'), factory,
                             bigendian=bigendian)
        out = image_to_numpy(msg)
        assert out.shape == rgb.shape and out.dtype == dtype
        inner = (slice(2, -2), slice(2, -2))
        err = np.abs(out[inner].astype(float) - rgb[inner].astype(float)).max() / scale
        assert err < 0.03, err
    # Independent reference: rosbags-image decodes the same message the same way.
    if bits == 8:
        ref = message_to_cvimage(msg, 'rgb8')
        np.testing.assert_array_equal(out, ref)


@pytest.mark.parametrize('codec', ['jpeg', 'png'])
@pytest.mark.parametrize('encoding', ['rgb8', 'bgr8'])
def test_compressed_round_trip(factory, codec, encoding):
    yy, xx = np.mgrid[0:40, 0:60]
    rgb = np.stack([xx * 4, yy * 6, 255 - xx * 4], -1).astype(np.uint8)
    given = rgb if encoding == 'rgb8' else rgb[..., ::-1].copy()
    msg = numpy_to_compressed(given, factory.header(5, 'cam'), factory, encoding=encoding,
                              codec=codec, quality=95)
    raw = factory.typestore.serialize_cdr(msg, 'sensor_msgs/msg/CompressedImage')
    msg = factory.typestore.deserialize_cdr(raw, 'sensor_msgs/msg/CompressedImage')
    assert msg.format == f'{encoding}; {codec} compressed bgr8'
    out = compressed_to_numpy(msg)
    assert out.shape == rgb.shape and out.dtype == np.uint8
    err = np.abs(out.astype(int) - rgb.astype(int))
    if codec == 'png':
        assert err.max() == 0
    else:
        assert err.mean() < 3.0
    np.testing.assert_array_equal(compressed_to_numpy(msg, output='passthrough'),
                                  out if encoding == 'rgb8' else out[..., ::-1])


def test_compressed_mono16_png_is_lossless(factory, rng):
    depth = rng.integers(0, 65535, size=(20, 30)).astype(np.uint16)
    msg = numpy_to_compressed(depth, factory.header(0, 'c'), factory, encoding='mono16',
                              codec='png')
    np.testing.assert_array_equal(compressed_to_numpy(msg), depth)


def test_plain_jpeg_format_string_from_other_drivers(factory):
    rgb = np.full((16, 16, 3), (200, 30, 10), np.uint8)
    ok, data = cv2.imencode('.jpg', rgb[..., ::-1])
    msg = factory.new('sensor_msgs/msg/CompressedImage', format='jpeg', data=data.reshape(-1))
    out = compressed_to_numpy(msg)
    assert np.abs(out.astype(int) - rgb).max() < 6


# --- bad input -----------------------------------------------------------------------------


def _image(factory, **fields):
    base = {'height': 2, 'width': 3, 'encoding': 'rgb8', 'step': 9,
            'data': np.zeros(18, np.uint8)}
    base.update(fields)
    return factory.new('sensor_msgs/msg/Image', **base)


def test_data_length_must_match_height_times_step(factory):
    with pytest.raises(ImageMessageError, match=r'17 bytes but height \* step = 2 \* 9 = 18'):
        image_to_numpy(_image(factory, data=np.zeros(17, np.uint8)))


def test_unknown_encoding_is_named(factory):
    with pytest.raises(ImageMessageError, match="Unsupported image encoding 'yuv9'"):
        image_to_numpy(_image(factory, encoding='yuv9'))


@pytest.mark.parametrize('h,w', [(0, 3), (2, 0), (0, 0)])
def test_zero_sized_image(factory, h, w):
    with pytest.raises(ImageMessageError, match='empty'):
        image_to_numpy(_image(factory, height=h, width=w, step=w * 3,
                              data=np.zeros(0, np.uint8)))


def test_step_smaller_than_row(factory):
    with pytest.raises(ImageMessageError, match='step 8 is smaller'):
        image_to_numpy(_image(factory, step=8, data=np.zeros(16, np.uint8)))


def test_undecodable_compressed_image(factory):
    msg = factory.new('sensor_msgs/msg/CompressedImage', format='jpeg',
                      data=np.frombuffer(b'not a jpeg at all', np.uint8))
    with pytest.raises(ImageMessageError, match='could not be decoded'):
        compressed_to_numpy(msg)
    empty = factory.new('sensor_msgs/msg/CompressedImage', format='png')
    with pytest.raises(ImageMessageError, match='no data'):
        compressed_to_numpy(empty)


def test_encoding_rejects_wrong_dtype_and_shape(rng):
    with pytest.raises(ImageMessageError, match='needs dtype uint16'):
        numpy_to_image_fields(np.zeros((4, 4), np.uint8), 'mono16')
    with pytest.raises(ImageMessageError, match=r'shape \[H, W, 3\]'):
        numpy_to_image_fields(np.zeros((4, 4), np.uint8), 'bgr8')
    with pytest.raises(ImageMessageError, match='empty'):
        numpy_to_image_fields(np.zeros((0, 4, 3), np.uint8), 'bgr8')


def _corrupt_burst(factory, rng, count, decodable=False):
    """``count`` CompressedImage messages of broken JPEG and PNG bytes.

    None decodes, or with ``decodable`` JPEGs whose tables are damaged: libjpeg
    still decodes them, with a warning.
    """
    picture = cv2.GaussianBlur(rng.integers(0, 256, (120, 160, 3), dtype=np.uint8), (5, 5), 2)
    encoded = {codec: cv2.imencode(f'.{codec}', picture)[1].tobytes()
               for codec in ('jpeg', 'png')}
    for i in range(count):
        codec = 'jpeg' if decodable else ('jpeg', 'png')[i % 2]
        data = bytearray(encoded[codec])
        if decodable:
            data[30:60] = bytes(30)
        elif codec == 'jpeg' or i % 3 == 0:     # cut short
            data = data[:int(len(data) * rng.uniform(0.1, 0.9))]
        elif i % 3 == 1:                        # bit flips past the header
            for pos in rng.integers(200, len(data), 40):
                data[pos] ^= 0x5A
        else:                                   # a damaged header
            data[30:60] = bytes(30)
        yield factory.new('sensor_msgs/msg/CompressedImage', header=factory.header(i + 1, 'c'),
                          format=codec, data=np.frombuffer(bytes(data), np.uint8))


def test_a_burst_of_corrupt_frames_is_counted_and_prints_nothing(factory, rng, capfd):
    from anomaly_perception.io.diagnostics import diagnostics_message
    from anomaly_perception.stream.flow import MalformedCounter
    from anomaly_perception.stream.flow import StreamStats
    from anomaly_perception.stream.pipeline import Pipeline
    capfd.readouterr()
    # What a node does with each frame: decode (the same function replay uses), count, log
    # the line the counter gives (at most one per kind per throttle window).
    counter, stats = MalformedCounter(period_s=10.0, clock=lambda: 5.0), StreamStats()
    lines = []
    for msg in _corrupt_burst(factory, rng, 1000):
        stats.frame_received()
        with pytest.raises(ImageMessageError) as err:
            Pipeline.decode(msg)
        stats.frame_malformed(str(err.value))
        lines.append(counter.add(err.value.kind, str(err.value)))
    # libjpeg's "Corrupt JPEG data" and libpng's errors reach file descriptor 2 directly when
    # OpenCV decodes; nothing may, so that a camera sending garbage cannot flood the log.
    out, errors = capfd.readouterr()
    assert errors == '' and out == ''
    assert counter.snapshot() == {'undecodable compressed data': 1000}
    assert [line for line in lines if line] == [lines[0]]
    assert 'could not be decoded as JPEG or PNG' in lines[0]
    snapshot = {**stats.snapshot(), 'malformed_by_kind': counter.snapshot()}
    status = diagnostics_message(factory, 'pixel_anomaly', factory.header(0, 'c'), snapshot,
                                 {}, 'm').status[0]
    values = {kv.key: kv.value for kv in status.values}
    assert values['malformed'] == values['malformed: undecodable compressed data'] == '1000'
    # JPEGs that decode despite damage (OpenCV prints "Corrupt JPEG data" for each) are scored,
    # quietly.
    for msg in _corrupt_burst(factory, rng, 100, decodable=True):
        assert Pipeline.decode(msg).shape == (120, 160, 3)
    assert capfd.readouterr() == ('', '')


@pytest.mark.parametrize('case', ['rgb', 'bgra', 'grey', 'grey16', 'palette', 'rgb16'])
def test_compressed_images_decode_to_what_opencv_gives(rng, case):
    from anomaly_perception.io.images import decode_image_bytes
    from PIL import Image
    import io
    shapes = {'rgb': (40, 60, 3), 'bgra': (40, 60, 4), 'grey': (40, 60), 'grey16': (40, 60),
              'palette': (40, 60, 3), 'rgb16': (40, 60, 3)}
    dtype = np.uint16 if case.endswith('16') else np.uint8
    image = rng.integers(0, np.iinfo(dtype).max, shapes[case], endpoint=True).astype(dtype)
    if case == 'palette':
        buf = io.BytesIO()
        Image.fromarray(image[..., ::-1].copy()).quantize(16).save(buf, 'PNG')
        data = buf.getvalue()
    else:
        data = cv2.imencode('.png', image)[1].tobytes()
    expected = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    got = decode_image_bytes(data)
    assert got.dtype == expected.dtype and got.shape == expected.shape
    np.testing.assert_array_equal(got, expected)
    smooth = cv2.GaussianBlur(rng.integers(0, 256, (48, 64, 3), dtype=np.uint8), (5, 5), 2)
    jpeg = cv2.imencode('.jpg', smooth)[1].tobytes()
    np.testing.assert_array_equal(decode_image_bytes(jpeg),
                                  cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR))

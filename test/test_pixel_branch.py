"""Pixel branch pieces: ERFNet, the losses of paper 002, per-pixel scores, calibration."""

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

import math

from anomaly_perception.branches.pixel.losses import class_weights
from anomaly_perception.branches.pixel.losses import cross_entropy
from anomaly_perception.branches.pixel.losses import focal_loss
from anomaly_perception.branches.pixel.losses import isomax_plus_loss
from anomaly_perception.branches.pixel.losses import logitnorm
from anomaly_perception.branches.pixel.losses import logitnorm_loss
from anomaly_perception.branches.pixel.losses import PixelLoss
from anomaly_perception.models.erfnet import count_parameters
from anomaly_perception.models.erfnet import ERFNet
from anomaly_perception.models.erfnet import IsoMaxPlusHead
from anomaly_perception.scoring.pixel import fit_pixel_calibration
from anomaly_perception.scoring.pixel import pixel_score
import cv2
import numpy as np
import pytest
import torch


# --- ERFNet ---------------------------------------------------------------------------------


def test_erfnet_has_the_published_parameter_count():
    model = ERFNet(20)
    assert count_parameters(model) == 2_066_836
    assert count_parameters(model.encoder) == 1_874_044 + 2_580   # + the encoder-only head
    assert count_parameters(model.decoder) == 190_212
    # The class count changes only the two heads.
    assert count_parameters(ERFNet(5)) == 2_066_836 - 15 * (128 + 1) - 15 * (16 * 4 + 1)


@pytest.mark.parametrize('height, width', [(480, 640), (360, 640), (512, 512), (720, 1280),
                                           (400, 300), (96, 500)])
def test_every_pixel_of_any_camera_is_scored(tiny_pixel_model, height, width):
    from anomaly_perception.branches.pixel.detector import PixelAnomalySegmenter
    from anomaly_perception.runtime.preprocess import content_box
    seg = PixelAnomalySegmenter.from_model_dir(tiny_pixel_model)
    image = np.random.default_rng(0).integers(0, 255, (height, width, 3), dtype=np.uint8)
    result = seg.segment(image)[0]
    for name in ('anomaly', 'probability', 'mask', 'semantic'):
        assert getattr(result, name).shape == (height, width), name
    # No blind band: every pixel has a finite score, a class and a probability.
    assert np.isfinite(result.anomaly).all() and np.isfinite(result.probability).all()
    assert (result.semantic < 7).all()
    assert result.mask.tolist() == (result.anomaly > seg.threshold).tolist()
    assert ((result.probability >= 0) & (result.probability <= 1)).all()
    assert np.isfinite(result.frame_score) and 0 <= result.frame_probability <= 1
    # The map is the model's map over the frame's part of the input, resized.
    y0, x0, h, w = content_box(height, width, seg.input_shape)
    raw, _, _ = seg.infer(seg.preprocess(image))
    assert h == seg.input_shape[0] or w == seg.input_shape[1]
    small = cv2.resize(result.anomaly, (w, h), interpolation=cv2.INTER_AREA)
    assert np.corrcoef(small.ravel(), raw[0, y0:y0 + h, x0:x0 + w].ravel())[0, 1] > 0.9
    # The same image as BGR gives the same maps; a batch gives one result each.
    bgr = seg.segment(np.ascontiguousarray(image[..., ::-1]), channel_order='bgr')[0]
    np.testing.assert_array_equal(bgr.anomaly, result.anomaly)
    assert len(seg.segment([image, image[:200, :300]])) == 2


def test_letterbox_keeps_the_whole_frame():
    from anomaly_perception.runtime.preprocess import content_box
    from anomaly_perception.runtime.preprocess import from_input
    from anomaly_perception.runtime.preprocess import letterbox
    assert content_box(480, 640, (144, 256)) == (0, 32, 144, 192)
    assert content_box(360, 640, (144, 256)) == (0, 0, 144, 256)
    assert content_box(720, 1280, (144, 256)) == (0, 0, 144, 256)
    assert content_box(512, 512, (144, 256)) == (0, 56, 144, 144)
    assert content_box(100, 1000, (144, 256)) == (59, 0, 26, 256)
    image = np.zeros((480, 640, 3), np.uint8)
    image[:, :320] = 200            # left half bright: it must stay the left half
    boxed = letterbox(image, (144, 256))
    assert boxed.shape == (144, 256, 3)
    assert (boxed[:, 32:128] == 200).all() and (boxed[:, 128:224] == 0).all()
    # The bands mirror the edge, a constant fill is for label maps.
    assert (boxed[:, :32] == 200).all() and (boxed[:, 224:] == 0).all()
    labels = letterbox(np.full((480, 640), 3, np.uint8), (144, 256), fill=255,
                       interp=cv2.INTER_NEAREST)
    assert (labels[:, :32] == 255).all() and (labels[:, 32:224] == 3).all()
    back = from_input(boxed[..., 0].astype(np.float32), (480, 640))
    assert back.shape == (480, 640) and back[:, :300].min() == 200 and back[:, 340:].max() == 0


def test_segmenter_onnxruntime_matches_torch(tiny_pixel_model):
    from anomaly_perception.branches.pixel.detector import PixelAnomalySegmenter
    image = np.random.default_rng(1).integers(0, 255, (360, 640, 3), dtype=np.uint8)
    a = PixelAnomalySegmenter.from_model_dir(tiny_pixel_model, 'torch').segment(image)[0]
    b = PixelAnomalySegmenter.from_model_dir(tiny_pixel_model, 'onnxruntime').segment(image)[0]
    assert np.isfinite(a.anomaly).all()
    np.testing.assert_allclose(b.anomaly, a.anomaly, rtol=1e-4, atol=1e-5)
    assert (a.semantic == b.semantic).mean() > 0.999


def test_segmenter_refuses_bad_input_and_bad_models(tiny_pixel_model, tmp_path):
    import shutil

    import yaml

    from anomaly_perception.branches.pixel.detector import PixelAnomalySegmenter
    from anomaly_perception.runtime.manifest import ModelError
    from anomaly_perception.runtime.preprocess import ImageInputError
    seg = PixelAnomalySegmenter.from_model_dir(tiny_pixel_model)
    for bad, match in ((np.zeros((40, 40, 3), np.float32), 'uint8'),
                       (np.zeros((40, 40), np.uint8), '3'), ([], 'empty')):
        with pytest.raises(ImageInputError, match=match):
            seg.segment(bad)
    copy = tmp_path / 'm'
    shutil.copytree(tiny_pixel_model, copy)
    manifest = yaml.safe_load((copy / 'manifest.yaml').read_text())
    manifest['classes'] = manifest['classes'][:-1]
    (copy / 'manifest.yaml').write_text(yaml.safe_dump(manifest))
    with pytest.raises(ModelError, match='lists 6 classes but the network has 7'):
        PixelAnomalySegmenter.from_model_dir(copy)
    shutil.rmtree(copy)
    shutil.copytree(tiny_pixel_model, copy)
    data = bytearray((copy / 'pixel_model.pt').read_bytes())
    data[100] ^= 0xFF
    (copy / 'pixel_model.pt').write_bytes(bytes(data))
    with pytest.raises(ModelError, match='pixel_model.pt.*sha256'):
        PixelAnomalySegmenter.from_model_dir(copy)


def test_pixel_stream_messages_carry_the_header_and_the_maps(tiny_pixel_model):
    from anomaly_perception.branches.pixel.config import PixelNodeConfig
    from anomaly_perception.branches.pixel.messages import output_topics
    from anomaly_perception.branches.pixel.messages import OUTPUT_TYPES
    from anomaly_perception.branches.pixel.messages import PixelMessageBuilder
    from anomaly_perception.branches.pixel.stream import PixelStream
    from anomaly_perception.io.images import image_to_numpy
    from anomaly_perception.io.messages import RosbagsMessageFactory
    config = PixelNodeConfig(model_dir=str(tiny_pixel_model), backend='torch')
    stream = PixelStream.from_config(config)
    image = np.random.default_rng(2).integers(0, 255, (360, 640, 3), dtype=np.uint8)
    frame = stream.process([123], [image])[0]
    factory = RosbagsMessageFactory()
    header = factory.header(1_700_000_000_123_000_000, 'robomaster/camera_optical_link')
    builder = PixelMessageBuilder.from_config(factory, config)
    plain = builder.outputs(header, frame)
    # No failure head in this model: no ~/failure_map (test_fsnet covers a model with one).
    assert frame.pixels.failure is None
    assert set(plain) == set(OUTPUT_TYPES) - {'overlay', 'failure_map'}
    msgs = builder.outputs(header, frame, overlay=True)
    assert set(msgs) == set(OUTPUT_TYPES) - {'failure_map'}
    assert set(OUTPUT_TYPES) <= set(output_topics('robomaster'))
    for key, msg in msgs.items():
        assert msg.header.stamp.sec == 1_700_000_000 and msg.header.stamp.nanosec == 123_000_000
        assert msg.header.frame_id == 'robomaster/camera_optical_link', key
    anomaly = image_to_numpy(msgs['anomaly_map'], output='passthrough')
    assert msgs['anomaly_map'].encoding == '32FC1' and anomaly.shape == (360, 640)
    np.testing.assert_array_equal(anomaly, frame.pixels.anomaly)
    mask = image_to_numpy(msgs['anomaly_mask'], output='passthrough')
    assert ((mask == 255) == frame.pixels.mask).all()
    semantic = image_to_numpy(msgs['semantic'], output='passthrough')
    np.testing.assert_array_equal(semantic, frame.pixels.semantic)
    assert image_to_numpy(msgs['overlay']).shape == (360, 640, 3)
    score = {h.class_id: h.score for h in msgs['score'].results}
    assert score['raw_score'] == pytest.approx(frame.pixels.frame_score)
    info = builder.label_info(header, stream.detector.classes)
    assert [c.class_name for c in info.class_map] == stream.detector.classes
    # A live threshold change moves the mask without reloading the model.
    stream.reconfigure(PixelNodeConfig(model_dir=str(tiny_pixel_model), backend='torch',
                                       target_fpr=0.3))
    looser = stream.process([124], [image])[0]
    assert looser.pixels.threshold < frame.pixels.threshold
    assert looser.pixels.mask.sum() >= frame.pixels.mask.sum()

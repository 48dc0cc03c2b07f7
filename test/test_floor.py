"""Hazards on the floor: projection, contact choice, error in the synthetic world."""

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

import json

from anomaly_perception.branches.instance.floor import contact_band
from anomaly_perception.branches.instance.floor import FloorCamera
from anomaly_perception.branches.instance.floor import FloorProjectionError
from anomaly_perception.branches.instance.floor import place_instances
from anomaly_perception.branches.instance.floor_experiment import measure_floor_errors
from anomaly_perception.branches.instance.floor_experiment import summarise
from anomaly_perception.branches.instance.floor_experiment import write_floor_report
import numpy as np
import pytest


def _camera(pitch_deg=0.0, height=0.5):
    return FloorCamera(fx=100.0, fy=100.0, cx=50.0, cy=40.0, height=height,
                       pitch=np.radians(pitch_deg))


def test_level_camera_hand_computed():
    cam = _camera(0.0, 0.5)
    # 10 px below the principal point: the ray drops 0.1 per metre -> floor at 5 m.
    points, valid = cam.to_floor([50.0, 70.0], [50.0, 50.0])
    assert valid.all()
    np.testing.assert_allclose(points[0], [0.0, 0.5, 5.0])
    np.testing.assert_allclose(points[1], [1.0, 0.5, 5.0])   # 20 px right: 0.2 per metre
    np.testing.assert_allclose(cam.level(points), [[5.0, 0.0], [5.0, 1.0]])


def test_pitched_camera_principal_ray_hits_at_height_over_tan():
    cam = _camera(20.0, 0.4)
    points, valid = cam.to_floor([50.0], [40.0])
    assert valid.all()
    forward, lateral = cam.level(points)[0]
    assert forward == pytest.approx(0.4 / np.tan(np.radians(20.0)))
    assert lateral == pytest.approx(0.0, abs=1e-12)
    # Along the ray: the optical-frame point is on the optical axis.
    assert points[0, 0] == pytest.approx(0.0, abs=1e-12)
    assert points[0, 1] == pytest.approx(0.0, abs=1e-12)
    assert points[0, 2] == pytest.approx(0.4 / np.sin(np.radians(20.0)))


def test_at_or_above_horizon_is_not_placed():
    cam = _camera(0.0)
    points, valid = cam.to_floor([50.0, 50.0], [40.0, 10.0])
    assert not valid.any()
    assert np.isnan(points).all()


def test_roundtrip_with_forward_projection():
    cam = FloorCamera(fx=300.0, fy=310.0, cx=320.0, cy=180.0, height=0.13,
                      pitch=np.radians(7.0))
    rng = np.random.default_rng(0)
    forward = rng.uniform(1.0, 5.0, 50)
    lateral = rng.uniform(-1.0, 1.0, 50)
    # Level floor point -> optical frame -> pixel -> back to the floor.
    c, s = np.cos(cam.pitch), np.sin(cam.pitch)
    y_level = np.full(50, cam.height)
    y = y_level * c - forward * s
    z = y_level * s + forward * c
    u = cam.cx + cam.fx * lateral / z
    v = cam.cy + cam.fy * y / z
    points, valid = cam.to_floor(u, v)
    assert valid.all()
    np.testing.assert_allclose(cam.level(points), np.stack([forward, lateral], 1), rtol=1e-9)


def test_from_camera_info_scales_k():
    k = [400.0, 0, 319.5, 0, 410.0, 179.5, 0, 0, 1]
    cam = FloorCamera.from_camera_info(k, 0.13, 0.1, scale=(0.5, 0.5))
    assert (cam.fx, cam.fy, cam.cx, cam.cy) == (200.0, 205.0, 159.75, 89.75)


@pytest.mark.parametrize('kwargs, words', [
    ({'height': 0.0}, 'height'), ({'height': -1.0}, 'height'),
    ({'fx': 0.0}, 'Focal'), ({'pitch': 2.0}, 'Pitch')])
def test_bad_camera_parameters(kwargs, words):
    base = {'fx': 100.0, 'fy': 100.0, 'cx': 50.0, 'cy': 40.0, 'height': 0.5, 'pitch': 0.0}
    with pytest.raises(FloorProjectionError, match=words):
        FloorCamera(**{**base, **kwargs})


def test_contact_band_is_the_bottom_of_the_mask():
    mask = np.zeros((100, 80), bool)
    mask[20:61, 30:50] = True      # 41 rows -> band of 4 rows
    mask[60, 10] = True            # one stray pixel on the bottom row
    u, v = contact_band(mask)
    assert v.min() == 57 and v.max() == 60
    assert contact_band(np.zeros((5, 5), bool)) is None


def test_place_instances_picks_the_nearest_bottom_point_and_width():
    cam = _camera(0.0, 0.5)
    ids = np.zeros((80, 100), np.uint16)
    ids[50:61, 40:61] = 3          # bottom row 60: 20 px below cy -> 2.5 m ahead
    ids[45:47, 0:5] = 4            # too small: 10 px
    ids[0:30, 0:30] = 5            # entirely above the horizon
    placed, not_placed = place_instances(ids, cam, min_pixels=11)
    assert sorted(not_placed) == [4, 5]
    (hazard,) = placed
    assert hazard.instance == 3
    assert hazard.forward == pytest.approx(2.5)
    assert hazard.lateral == pytest.approx(0.0)     # column 50 = cx: straight ahead
    assert hazard.contact_px == (50.0, 60.0)
    assert hazard.width == pytest.approx(21 * 2.5 / 100)   # 21 px at 2.5 m, f = 100
    assert hazard.distance == pytest.approx(2.5)


def test_synthetic_world_error_within_target(tmp_path):
    # The acceptance figure (docs/RESULTS.md) uses --runs 60; a small sample here.
    errors = measure_floor_errors(n_runs=6, frames_per_run=3, seed=1)
    assert len(errors) >= 5
    assert all(1.0 <= e.true_distance <= 5.0 for e in errors)
    summary = summarise(errors)
    assert summary['median_relative_error'] <= 0.15
    written = write_floor_report(tmp_path, errors, {'runs': 6})
    data = json.loads((tmp_path / 'floor.json').read_text())
    assert data['n'] == written['n'] == len(data['rows'])
    assert (tmp_path / 'floor.png').stat().st_size > 1000


def test_contacts_recorded_by_the_world_lie_on_the_floor():
    from anomaly_perception.data.synthetic.world import Sequence
    from anomaly_perception.data.synthetic.world import SequenceSpec
    seq = Sequence(SequenceSpec(seed=3, environment='corridor', scene_seed=2, anomaly='boxes',
                                duration_s=20.0))
    _, z, _ = seq.sites[0]
    frame = seq.frame(float((z - 2.0 - seq.start_z) / seq.speed), 320, 180)
    assert frame.contacts, 'boxes 2 m ahead must touch the floor in view'
    assert set(frame.contacts) <= set(np.unique(frame.instances)) - {0}
    for forward, _lateral in frame.contacts.values():
        assert 1.0 < forward < 3.5
    height, pitch = frame.camera
    assert 0.1 < height < 0.2 and np.degrees(pitch) == pytest.approx(7.0, abs=1.01)

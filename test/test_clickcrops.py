"""The click-crops promptable segmenter: windows, pasting back, learning, loading."""

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

from anomaly_perception.branches.instance import clickcrops
from anomaly_perception.branches.instance import train_clickcrops as tc
from anomaly_perception.runtime.manifest import ModelError
import numpy as np
import pytest
import torch


def _squares(n, rng, h=48, w=80):
    """Frames of noise with three flat-coloured rectangles each: regions and instances."""
    images = rng.normal(110, 25, (n, h, w, 3)).clip(0, 255).astype(np.uint8)
    regions = np.zeros((n, h, w), np.int32)
    for i in range(n):
        for rid in (1, 2, 3):
            hh, ww = rng.integers(5, 20, 2)
            y, x = rng.integers(0, h - hh), rng.integers(0, w - ww)
            images[i, y:y + hh, x:x + ww] = rng.integers(0, 255, 3)
            regions[i, y:y + hh, x:x + ww] = rid
        regions[i][regions[i] == 0] = 4           # the background is a region too
    instances = np.where(regions < 4, regions, 0).astype(np.uint16)
    return tc.RegionData(images, regions, [{1, 2, 3}] * n, instances)


def test_a_window_pasted_back_lands_where_it_was_cut():
    h, w = 60, 90
    mask = np.zeros((h, w), bool)
    mask[20:35, 30:62] = True
    image = torch.from_numpy(mask).float()[None, None]
    size = 32
    for centre, side in (((45.0, 27.0), 40.0), ((5.0, 3.0), 30.0), ((80.0, 50.0), 70.0)):
        c = torch.tensor([centre])
        grid = clickcrops.crop_grid(c, torch.tensor([side]), (h, w), size)
        crop = clickcrops.sample_windows(image, torch.zeros(1, dtype=torch.long), grid)[0, 0]
        out = torch.zeros(h, w, dtype=torch.bool)
        clickcrops.paste_window(out, crop * 2 - 1, c[0], side)
        x0, y0 = centre[0] - side / 2, centre[1] - side / 2
        window = np.zeros((h, w), bool)
        window[max(0, int(y0 + 0.5)):int(y0 + side + 0.5), max(0, int(x0 + 0.5)):
               int(x0 + side + 0.5)] = True
        truth = mask & window
        got = out.numpy()
        assert not (got & ~window).any(), 'nothing outside the window'
        if truth.any():
            iou = (got & truth).sum() / (got | truth).sum()
            assert iou > 0.85, (centre, side, iou)
        # The in-image part of the window is what inside_image says.
        inside = clickcrops.inside_image(grid, (h, w))[0]
        assert inside.any() and (inside.all() == (x0 >= 0 and y0 >= 0 and x0 + side <= w
                                                  and y0 + side <= h))


def test_segmenter_interface_batches_and_skips_points_outside():
    torch.manual_seed(0)
    spec = clickcrops.crops_spec(crop_size=16, widths=(4, 8, 8))
    net = clickcrops.build_clicknet(spec)
    rgb = np.random.default_rng(0).integers(0, 255, (40, 64, 3), dtype=np.uint8)
    one = clickcrops.ClickCropSegmenter(net, spec, prompt_batch=1)
    many = clickcrops.ClickCropSegmenter(net, spec, prompt_batch=64)
    points = torch.tensor([[3.0, 4.0], [60.0, 30.0], [-2.0, 5.0], [30.0, 20.0]])
    results = []
    for seg in (one, many):
        with pytest.raises(RuntimeError, match='set_image'):
            seg.masks_for_points(points)
        seg.set_image(rgb)
        results.append(seg.masks_for_points(points))
    (m1, i1), (m2, i2) = results
    assert m1.shape == (4, 40, 64) and m1.dtype == torch.bool and i1.shape == (4,)
    assert torch.equal(m1, m2)
    torch.testing.assert_close(i1, i2, rtol=1e-4, atol=1e-5)
    assert not m1[2].any() and i1[2] == 0 and one.outside_points == 1
    logits, ious, sides = many.window_logits(points[:1])
    assert logits.shape == (1, 3, 16, 16) and ious.shape == (1, 3)
    np.testing.assert_allclose(sides.numpy(), [0.12 * 40, 0.35 * 40, 0.9 * 40], rtol=1e-6)
    with pytest.raises(ValueError, match='scales'):
        clickcrops.crops_spec(scales=(0.0,))


def test_training_batch_targets_and_the_whole_region_iou():
    rng = np.random.default_rng(1)
    data = _squares(3, rng)
    spec = clickcrops.crops_spec(crop_size=16, widths=(4, 8, 8))
    clicks = tc.sample_clicks(data, 5, 1.0, rng)
    for f, rid, (x, y), area in clicks:
        assert data.regions[f, int(y), int(x)] == rid and area == (data.regions[f] == rid).sum()
        assert rid in data.anomalous[f]            # anomaly share 1: always an instance
    x, target, valid, pixel_area, region_area = tc.window_batch(data, clicks, spec, rng,
                                                                augment=False)
    assert x.shape == (15, 4, 16, 16) and target.shape == valid.shape == (15, 16, 16)
    # Without jitter the click is at the centre of every window, on its region.
    assert (target[:, 7:9, 7:9] > 0.5).any(dim=(1, 2)).all()
    assert x[:, 3].flatten(1).argmax(1).unique().numel() == 1    # the click map's peak
    # A perfect mask of the region inside the window: its whole-region IoU is the share of
    # the region the window holds (1 for a window that holds all of it).
    perfect = torch.where(target > 0.5, 10.0, -10.0)
    iou = tc.whole_region_iou(perfect, target, valid, pixel_area, region_area)
    held = target.flatten(1).sum(1) * pixel_area / region_area
    torch.testing.assert_close(iou, held.clamp(max=1), rtol=0.05, atol=0.05)
    assert (tc.whole_region_iou(-perfect.abs(), target, valid, pixel_area, region_area) == 0).all()


def test_training_learns_rectangles_resumes_and_the_model_loads(tmp_path):
    from anomaly_perception.branches.instance.promptable import load_promptable
    from anomaly_perception.runtime.manifest import write_model_dir
    from anomaly_perception.training import to_bytes
    torch.set_num_threads(2)
    rng = np.random.default_rng(2)
    train, val = _squares(12, rng), _squares(4, rng)
    config = tc.ClickCropsTrainingConfig(crop_size=24, widths=(8, 8, 16), steps=240,
                                         batch_size=16, val_every=80, lr=3e-3, warmup_steps=20,
                                         scales=(0.2, 0.5))
    spec = clickcrops.crops_spec(config.crop_size, config.scales, config.widths)
    untrained = clickcrops.ClickCropSegmenter(clickcrops.build_clicknet(spec), spec)
    before, n = tc.one_point_iou(untrained, val.images, val.instances)
    net, state, spec = tc.train_clickcrops_network(train, val, tmp_path / 'work', config,
                                                   show_progress=False)
    after = state['best_iou']
    assert n == 12 and [h['step'] for h in state['history']] == [80, 160, 240]
    assert after > 0.45 and after > before + 0.2, (before, after)
    # A rerun resumes from the checkpoint: nothing left to train, the same best weights.
    again, state2, _ = tc.train_clickcrops_network(train, val, tmp_path / 'work', config,
                                                   show_progress=False)
    assert state2['history'] == state['history']
    for a, b in zip(net.state_dict().values(), again.state_dict().values()):
        assert torch.equal(a, b)
    # A model directory of it loads as a promptable segmenter; a bad one names its file.
    manifest = {'name': 'crops', 'branch': 'instance',
                'architecture': {'type': 'click_crops', 'spec': spec}}
    write_model_dir(tmp_path / 'crops', manifest, {'promptable.pt': to_bytes(net.state_dict())})
    seg, _ = load_promptable(tmp_path / 'crops')
    assert isinstance(seg, clickcrops.ClickCropSegmenter)
    assert tc.one_point_iou(seg, val.images, val.instances)[0] == pytest.approx(after)
    wrong = dict(manifest, architecture={'type': 'click_crops',
                                         'spec': dict(spec, widths=[8, 8, 24])})
    write_model_dir(tmp_path / 'wrong', wrong, {'promptable.pt': to_bytes(net.state_dict())})
    with pytest.raises(ModelError, match=r"promptable\.pt' does not match its click_crops"):
        load_promptable(tmp_path / 'wrong')
    write_model_dir(tmp_path / 'cut', manifest,
                    {'promptable.pt': to_bytes(net.state_dict())[:500]})
    with pytest.raises(ModelError, match=r"promptable\.pt'.*not a readable"):
        load_promptable(tmp_path / 'cut')


def test_train_promptable_design_crops_from_the_command_line(tiny_pixel_data, tiny_pixel_model,
                                                             tmp_path):
    from anomaly_perception.branches.instance.detector import InstanceAnomalySegmenter
    from anomaly_perception.cli import main
    out = tmp_path / 'crops'
    assert main(['train', 'promptable', '--design', 'crops', '--data', str(tiny_pixel_data),
                 '--out', str(out), '--work', str(tmp_path / 'work'), '--steps', '4',
                 '--val-every', '2', '--batch-size', '4', '--every', '1']) == 0
    seg = InstanceAnomalySegmenter.from_model_dirs(tiny_pixel_model, out, backend='torch',
                                                   prompt_fpr=0.3, num_points=8)
    rgb = np.random.default_rng(3).integers(0, 255, (64, 64, 3), dtype=np.uint8)
    r = seg.segment(rgb)
    assert r.ids.shape == (64, 64) and len(r.points) > 0
    assert main(['train', 'promptable', '--design', 'crops', '--data', str(tiny_pixel_data),
                 '--out', str(tmp_path / 'x'), '--init-from', str(tiny_pixel_model)]) == 1


def test_pasted_objects_are_one_instance_each():
    from anomaly_perception.branches.instance.place_clickcrops import pasted_click_data
    rng = np.random.default_rng(0)
    frames = rng.integers(90, 110, (3, 72, 128, 3), dtype=np.uint8)
    data = pasted_click_data(frames, seed=4, min_region=16)
    again = pasted_click_data(frames, seed=4, min_region=16)
    assert np.array_equal(data.images, again.images) and np.array_equal(data.regions,
                                                                        again.regions)
    assert data.images.shape == frames.shape and data.regions.dtype == np.int16
    for f in range(3):
        ids = set(np.unique(data.regions[f]).tolist()) - {0}
        assert ids and data.anomalous[f] == ids     # every region is a pasted object
        assert all((data.regions[f] == k).sum() >= 16 for k in ids)
        changed = np.any(data.images[f] != frames[f], axis=-1)
        assert changed[data.regions[f] > 0].mean() > 0.9     # labels lie on pasted pixels
    np.testing.assert_array_equal(data.instances, data.regions.astype(np.uint16))


def test_train_promptable_crops_tunes_on_a_place_s_bags(patrol_bag_5s, tmp_path, capsys):
    from anomaly_perception.branches.instance.promptable import load_promptable
    from anomaly_perception.cli import main
    from anomaly_perception.runtime.manifest import load_manifest
    from anomaly_perception.runtime.manifest import write_model_dir
    from anomaly_perception.training import to_bytes
    torch.manual_seed(0)
    spec = clickcrops.crops_spec(24, (0.2, 0.5), (8, 8, 16))
    init = clickcrops.build_clicknet(spec)
    write_model_dir(tmp_path / 'init', {'name': 'init', 'branch': 'instance',
                                        'architecture': {'type': 'click_crops', 'spec': spec}},
                    {'promptable.pt': to_bytes(init.state_dict())})
    args = ['train', 'promptable', '--design', 'crops', '--bag', str(patrol_bag_5s),
            '--init-promptable', str(tmp_path / 'init'), '--out', str(tmp_path / 'place'),
            '--work', str(tmp_path / 'work'), '--steps', '4', '--val-every', '2',
            '--batch-size', '4', '--every', '20']
    assert main(args) == 0
    assert 'held-out pasted objects, mask IoU from one point' in capsys.readouterr().out
    manifest = load_manifest(tmp_path / 'place')
    assert manifest['architecture']['spec'] == spec
    assert manifest['provenance']['frames'] == {'train': 5, 'held_out': 1, 'input': [360, 640]}
    assert [h['step'] for h in manifest['metrics']['history']] == [2, 4]
    assert 0.0 <= manifest['metrics']['held_out_iou_before'] <= 1.0
    tuned, _ = load_promptable(tmp_path / 'place')
    pairs = zip(init.state_dict().values(), tuned.net.state_dict().values())
    assert any(not torch.equal(a, b) for a, b in pairs)
    # The bag's frames are read at their own resolution: a keyframe of it segments.
    tuned.set_image(np.zeros((360, 640, 3), np.uint8))
    masks, _ = tuned.masks_for_points(torch.tensor([[320.0, 300.0]]))
    assert masks.shape == (1, 360, 640)
    # Tuning needs a crops model to start from, and one source of frames.
    assert main(args[:5] + args[7:] + ['--overwrite']) == 1
    assert '--init-promptable' in capsys.readouterr().err
    assert main(args + ['--data', str(tmp_path), '--overwrite']) == 1
    assert 'not both' in capsys.readouterr().err


def test_the_smallest_window_the_object_fits_in_is_kept():
    s = 8
    sides = torch.tensor([10.0, 20.0, 40.0])
    logits = -torch.ones(4, 3, s, s)
    logits[0, 0] = 1.0                   # fills the small window: cut by its edge
    logits[0, 1, 3:5, 3:5] = 1.0         # fits in the middle one
    logits[0, 2, 3:5, 3:5] = 1.0
    logits[1, :, :, :] = 1.0             # touches every edge: the largest non-empty
    logits[2, 0, 0:3, 3:5] = 1.0         # touches the top edge, which lies outside the image
    logits[3, 1, 3:5, 3:5] = 1.0         # empty small window, fitting middle one
    points = torch.tensor([[50.0, 50.0], [50.0, 50.0], [50.0, 2.0], [50.0, 50.0]])
    chosen = clickcrops.smallest_inside(logits, points, sides, (100, 100))
    assert chosen.tolist() == [1, 2, 0, 1]
    # In a segmenter, the spec's choice decides; an unknown choice is refused.
    assert clickcrops.crops_spec()['choice'] == 'smallest_inside'
    with pytest.raises(ValueError, match='choice must be one of'):
        clickcrops.crops_spec(choice='largest')
    torch.manual_seed(1)
    spec = clickcrops.crops_spec(16, (0.2, 0.6), (4, 4, 8), choice='predicted_iou')
    seg = clickcrops.ClickCropSegmenter(clickcrops.build_clicknet(spec), spec)
    seg.set_image(np.random.default_rng(0).integers(0, 255, (40, 60, 3), dtype=np.uint8))
    pts = torch.tensor([[20.0, 20.0], [40.0, 10.0]])
    masks, best = seg.masks_for_points(pts)
    lg, ious, sides = seg.window_logits(pts)
    for j in range(2):
        expected = torch.zeros(40, 60, dtype=torch.bool)
        k = int(ious[j].argmax())
        clickcrops.paste_window(expected, lg[j, k], pts[j], float(sides[k]))
        assert torch.equal(masks[j], expected) and best[j] == ious[j, k]

"""The promptable segmenter: SAM's classes from segment-anything, tiny and random here."""

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

from anomaly_perception.branches.instance import ugains
from anomaly_perception.branches.instance.promptable import build_sam
from anomaly_perception.branches.instance.promptable import load_sam_checkpoint
from anomaly_perception.branches.instance.promptable import PromptableSegmenter
from anomaly_perception.branches.instance.promptable import sam_spec
from anomaly_perception.runtime.manifest import ModelError
import numpy as np
import pytest
import torch

pytest.importorskip('segment_anything')


def _tiny_spec(**encoder):
    # The ViT-B layout (12 blocks, global attention in blocks 2, 5, 8, 11, windowed
    # elsewhere, relative positions) with tiny widths and a 64-pixel input.
    return sam_spec('vit_b', image_size=64, prompt_dim=16,
                    encoder={'embed_dim': 24, 'num_heads': 3, 'window_size': 2, **encoder},
                    decoder={'mlp_dim': 32, 'num_heads': 2, 'iou_head_hidden_dim': 16})


@pytest.fixture(scope='module')
def tiny_sam():
    torch.manual_seed(0)
    return build_sam(_tiny_spec())


def test_tiny_vit_b_layout_sam_segments_point_prompts(tiny_sam):
    from segment_anything import SamPredictor
    assert len(tiny_sam.image_encoder.blocks) == 12
    assert [b.window_size for b in tiny_sam.image_encoder.blocks].count(0) == 4
    rgb = np.random.default_rng(0).integers(0, 255, (48, 80, 3), dtype=np.uint8)
    points = torch.tensor([[5.0, 5.0], [70.0, 40.0], [40.0, 24.0]])
    seg = PromptableSegmenter(tiny_sam, prompt_batch=64)
    seg.set_image(rgb)
    masks, iou = seg.masks_for_points(points)
    assert masks.shape == (3, 48, 80) and masks.dtype == torch.bool and iou.shape == (3,)
    # The same as SAM's own predictor with best-of-three by predicted IoU.
    predictor = SamPredictor(tiny_sam)
    predictor.set_image(rgb)
    coords = predictor.transform.apply_coords_torch(points, (48, 80))[:, None]
    logits, all_iou, _ = predictor.predict_torch(coords, torch.ones(3, 1, dtype=torch.long),
                                                 return_logits=True)
    expected = ugains.select_best_masks(logits, all_iou)
    assert torch.equal(masks, expected)
    torch.testing.assert_close(iou, all_iou.max(dim=1).values)
    # One prompt at a time gives the same masks as all prompts in one decoder call.
    one = PromptableSegmenter(tiny_sam, prompt_batch=1)
    one.set_image(rgb)
    masks_one, iou_one = one.masks_for_points(points)
    assert torch.equal(masks_one, masks)
    torch.testing.assert_close(iou_one, iou, rtol=1e-5, atol=1e-5)
    empty, _ = seg.masks_for_points(torch.zeros(0, 2))
    assert empty.shape == (0, 48, 80)


def test_sam_checkpoints_load_and_bad_ones_name_file_and_architecture(tiny_sam, tmp_path):
    good = tmp_path / 'sam_tiny.pth'
    torch.save(tiny_sam.state_dict(), good)
    loaded = load_sam_checkpoint(good, spec=_tiny_spec())
    for (k, a), b in zip(tiny_sam.state_dict().items(), loaded.state_dict().values()):
        assert torch.equal(a, b), k
    with pytest.raises(ModelError, match=r"nope\.pth'.*SAM vit_b"):
        load_sam_checkpoint(tmp_path / 'nope.pth', spec=_tiny_spec())
    corrupt = tmp_path / 'corrupt.pth'
    corrupt.write_bytes(good.read_bytes()[:1000])
    with pytest.raises(ModelError, match=r"corrupt\.pth'.*not a readable"):
        load_sam_checkpoint(corrupt, spec=_tiny_spec())
    # Weights of another width: the error names the file, the architecture and a tensor.
    with pytest.raises(ModelError, match=r"sam_tiny\.pth' does not match SAM vit_b: .*shapes"):
        load_sam_checkpoint(good, spec=_tiny_spec(embed_dim=30))
    with pytest.raises(ModelError, match='unknown SAM variant'):
        sam_spec('vit_x')


def test_frame_regions_instances_first_then_class_components():
    from anomaly_perception.branches.instance.train_promptable import frame_regions
    labels = np.zeros((6, 8), np.uint8)
    labels[:, 4:] = 1                    # class 1 on the right...
    labels[:, 6] = 0                     # ...split in two by a column of class 0
    labels[0, 0] = 255                   # void belongs to no region
    inst = np.zeros((6, 8), np.uint16)
    inst[4:, :2] = 9                     # an anomaly instance (4 px) over class 0
    regions, anomalous = frame_regions(labels, inst, min_region=4)
    assert anomalous == {1} and (regions == 1).sum() == 4
    assert regions[0, 0] == 0
    # class 0: the left block (minus the instance and the void pixel) and column 6 apart;
    # class 1: columns 4-5 and column 7.
    assert len(set(np.unique(regions)) - {0}) == 5
    assert len(np.unique(regions[:, 6])) == 1
    assert regions[0, 6] not in (regions[0, 5], regions[0, 7])


def test_promptable_loss_trains_the_best_of_three():
    from anomaly_perception.branches.instance.train_promptable import promptable_loss
    from anomaly_perception.branches.instance.train_promptable import PromptableTrainingConfig
    target = torch.zeros(1, 1, 4, 4)
    target[..., :2, :] = 1.0
    good = torch.where(target > 0, 8.0, -8.0)[0, 0]
    low_res = torch.stack([-good, good, torch.zeros(4, 4)])[None].requires_grad_()
    iou = torch.tensor([[0.0, 1.0, 0.0]], requires_grad=True)
    loss = promptable_loss(low_res, iou, target, PromptableTrainingConfig())
    loss.backward()
    # Only the IoU term reaches the masks that were not the best; the best mask's loss is ~0.
    assert loss.item() < 0.3
    assert low_res.grad[0, 0].abs().sum() == 0 and low_res.grad[0, 2].abs().sum() == 0
    # The IoU head regresses the actual IoUs (0, 1, and 0 for the all-zero logits, which are
    # empty at logit > 0): predictions 0, 1, 0 are exact, so their gradient is zero.
    assert iou.grad.abs().max().item() == pytest.approx(0.0, abs=1e-6)


@pytest.mark.parametrize('patch', [8, 16])
def test_small_spec_grid_follows_patch_size(patch):
    from anomaly_perception.branches.instance.promptable import small_spec
    from anomaly_perception.branches.instance.train_promptable import decode_prompts
    sam = build_sam(small_spec(64, 16, patch))
    embedding = sam.image_encoder(sam.preprocess(torch.zeros(1, 3, 64, 64)))
    assert embedding.shape == (1, 16, 64 // patch, 64 // patch)
    masks, _ = decode_prompts(sam, embedding, torch.zeros(1, dtype=torch.long),
                              torch.tensor([[10.0, 20.0]]))
    assert masks.shape == (1, 3, 4 * 64 // patch, 4 * 64 // patch)
    with pytest.raises(ModelError, match='patch_size must be 8 or 16'):
        small_spec(64, 16, 4)


def test_decode_prompts_equals_sams_decoder_per_frame(tiny_sam):
    from anomaly_perception.branches.instance.train_promptable import decode_prompts
    torch.manual_seed(1)
    embeddings = torch.randn(2, 16, 4, 4)
    points = torch.tensor([[5.0, 9.0], [60.0, 30.0], [20.0, 50.0]])
    owner = torch.tensor([1, 0, 1])
    with torch.no_grad():
        masks, iou = decode_prompts(tiny_sam, embeddings, owner, points)
        assert masks.shape == (3, 3, 16, 16) and iou.shape == (3, 3)
        # Each prompt alone through segment-anything's own decoder on its own frame.
        for p in range(3):
            labels = torch.ones(1, 1, dtype=torch.int64)
            sparse, dense = tiny_sam.prompt_encoder(points=(points[p:p + 1, None], labels),
                                                    boxes=None, masks=None)
            ref_masks, ref_iou = tiny_sam.mask_decoder(
                image_embeddings=embeddings[owner[p]:owner[p] + 1],
                image_pe=tiny_sam.prompt_encoder.get_dense_pe(), sparse_prompt_embeddings=sparse,
                dense_prompt_embeddings=dense, multimask_output=True)
            torch.testing.assert_close(masks[p:p + 1], ref_masks, rtol=1e-4, atol=1e-5)
            torch.testing.assert_close(iou[p:p + 1], ref_iou, rtol=1e-4, atol=1e-5)


def test_decode_prompts_with_points_labels_and_a_mask_prompt(tiny_sam):
    from anomaly_perception.branches.instance.train_promptable import decode_prompts
    torch.manual_seed(2)
    embeddings = torch.randn(2, 16, 4, 4)
    points = torch.tensor([[[5.0, 9.0], [40.0, 12.0]], [[60.0, 30.0], [0.0, 0.0]]])
    labels = torch.tensor([[1, 0], [1, -1]])
    owner = torch.tensor([1, 0])
    previous = torch.randn(2, 1, 16, 16)          # the decoder's own low-resolution logits
    with torch.no_grad():
        masks, iou = decode_prompts(tiny_sam, embeddings, owner, points, labels, previous)
        for p in range(2):
            sparse, dense = tiny_sam.prompt_encoder(points=(points[p:p + 1], labels[p:p + 1]),
                                                    boxes=None, masks=previous[p:p + 1])
            ref_masks, ref_iou = tiny_sam.mask_decoder(
                image_embeddings=embeddings[owner[p]:owner[p] + 1],
                image_pe=tiny_sam.prompt_encoder.get_dense_pe(), sparse_prompt_embeddings=sparse,
                dense_prompt_embeddings=dense, multimask_output=True)
            torch.testing.assert_close(masks[p:p + 1], ref_masks, rtol=1e-4, atol=1e-5)
            torch.testing.assert_close(iou[p:p + 1], ref_iou, rtol=1e-4, atol=1e-5)


def test_correction_points_come_from_the_error_and_say_which():
    from anomaly_perception.branches.instance.train_promptable import correction_points
    targets = torch.zeros(3, 1, 8, 8)
    targets[:, :, 2:6, 2:6] = 1.0
    logits = torch.full((3, 1, 8, 8), -5.0)
    logits[0, :, 2:6, 2:4] = 5.0        # half the object: the rest is missed -> positive
    logits[1] = targets[1] * 10 - 5     # exact -> padding
    logits[1, :, 7, 7] = 5.0            # ... except one false pixel -> negative there
    logits[2] = targets[2] * 10 - 5     # exact
    points, labels = correction_points(logits, targets, np.random.default_rng(0))
    assert labels.tolist() == [1, 0, -1]
    x, y = points[0]
    assert 4 <= x < 6 and 2 <= y < 6            # in the missed half
    assert tuple(points[1]) == (7.0, 7.0)


def test_train_promptable_with_iterative_prompting(tiny_pixel_data, tmp_path):
    from anomaly_perception.branches.instance.train_promptable import PromptableTrainingConfig
    from anomaly_perception.branches.instance.train_promptable import train_promptable_model
    config = PromptableTrainingConfig(image_size=64, prompt_dim=16, epochs=1, batch_size=8,
                                      prompts_per_image=2, refine_rounds=2)
    manifest = train_promptable_model(tiny_pixel_data, tmp_path / 'p', tmp_path / 'w', config,
                                      cache_dir=tmp_path / 'c', show_progress=False)
    assert manifest['training']['refine_rounds'] == 2
    assert np.isfinite(manifest['metrics']['history'][0]['loss'])


def test_train_promptable_tiny_model_loads_and_segments(tiny_pixel_data, tiny_pixel_model,
                                                        tmp_path):
    from anomaly_perception.branches.instance.promptable import load_promptable
    from anomaly_perception.branches.instance.train_promptable import PromptableTrainingConfig
    from anomaly_perception.branches.instance.train_promptable import train_promptable_model
    config = PromptableTrainingConfig(image_size=64, prompt_dim=16, epochs=1, batch_size=8,
                                      prompts_per_image=2, init_from=str(tiny_pixel_model))
    manifest = train_promptable_model(tiny_pixel_data, tmp_path / 'p', tmp_path / 'w', config,
                                      cache_dir=tmp_path / 'c', show_progress=False)
    assert manifest['branch'] == 'instance' and manifest['architecture']['type'] == 'sam'
    assert manifest['metrics']['history'][0]['val_instances'] > 0
    seg, _ = load_promptable(tmp_path / 'p')
    seg.set_image(np.zeros((48, 64, 3), np.uint8))
    masks, iou = seg.masks_for_points(torch.tensor([[3.0, 4.0]]))
    assert masks.shape == (1, 48, 64) and iou.shape == (1,)
    with pytest.raises(ModelError, match="holds a 'pixel' model"):
        load_promptable(tiny_pixel_model)


def _tiny_vit_t_spec(**encoder):
    # MobileSAM's layout (conv stage, three attention stages, the last merging of stride 1)
    # with tiny widths: a 64-pixel input, 16x16 tokens after the stem, an 8x8 grid in
    # stage 1 (windows of 3: padded), a 4x4 grid in stages 2 and 3.
    return sam_spec('vit_t', image_size=64, prompt_dim=16,
                    encoder={'embed_dims': [8, 16, 24, 32], 'depths': [1, 1, 2, 1],
                             'num_heads': [1, 2, 3, 4], 'window_sizes': [3, 3, 4, 2],
                             'num_classes': 10, **encoder},
                    decoder={'mlp_dim': 32, 'num_heads': 2, 'iou_head_hidden_dim': 16})


def test_mobile_sam_vit_t_has_the_published_layout_and_key_names():
    from anomaly_perception.branches.instance.tinyvit import relative_offsets
    sam = build_sam(sam_spec('vit_t'))
    encoder = {k: v.shape for k, v in sam.state_dict().items() if k.startswith('image_encoder.')}
    # Counted on MobileSAM's own TinyViT module (302 tensors, 6,065,532 parameters with
    # the ImageNet classifier), built with the vit_t arguments of its build_sam.
    assert len(encoder) == 302
    assert sum(p.numel() for p in sam.image_encoder.parameters()) == 6_065_532
    expected = {
        'image_encoder.patch_embed.seq.0.c.weight': (32, 3, 3, 3),
        'image_encoder.patch_embed.seq.2.bn.running_var': (64,),
        'image_encoder.layers.0.blocks.1.conv2.c.weight': (256, 1, 3, 3),
        'image_encoder.layers.0.downsample.conv1.c.weight': (128, 64, 1, 1),
        'image_encoder.layers.1.blocks.0.attn.qkv.weight': (384, 128),
        'image_encoder.layers.1.blocks.0.attn.attention_biases': (4, 49),
        'image_encoder.layers.2.blocks.5.attn.attention_biases': (5, 196),
        'image_encoder.layers.2.blocks.5.mlp.fc1.weight': (640, 160),
        'image_encoder.layers.2.downsample.conv2.c.weight': (320, 1, 3, 3),
        'image_encoder.layers.3.blocks.1.local_conv.bn.num_batches_tracked': (),
        'image_encoder.head.weight': (1000, 320),
        'image_encoder.neck.0.weight': (256, 320, 1, 1),
        'image_encoder.neck.3.bias': (256,)}
    for key, shape in expected.items():
        assert tuple(encoder[key]) == shape, key
    assert 'image_encoder.layers.3.downsample.conv1.c.weight' not in encoder
    assert not any('bias_index' in k for k in encoder)        # not persistent, as theirs
    # Stage 3 keeps the 1/16 grid: 64x64 tokens at 1024 pixels.
    assert sam.image_encoder.grid == 64 and sam.image_encoder.layers[3].blocks[0].resolution \
        == (64, 64)
    # The bias table: one entry per offset (|dy|, |dx|), numbered in raster order of the pairs.
    index = relative_offsets(3)
    assert index.shape == (9, 9) and int(index.max()) == 8 and index[0, 0] == 0
    assert index[0, 1] == index[1, 2] == index[4, 3] and index[0, 4] == index[8, 4]


def test_tiny_mobile_sam_segments_points_exports_and_loads_its_weights(tmp_path):
    onnxruntime = pytest.importorskip('onnxruntime')
    torch.manual_seed(0)
    spec = _tiny_vit_t_spec()
    sam = build_sam(spec)
    rgb = np.random.default_rng(1).integers(0, 255, (48, 80, 3), dtype=np.uint8)
    seg = PromptableSegmenter(sam)
    seg.set_image(rgb)
    assert tuple(seg.predictor.features.shape) == (1, 16, 4, 4)
    masks, iou = seg.masks_for_points(torch.tensor([[5.0, 5.0], [70.0, 40.0]]))
    assert masks.shape == (2, 48, 80) and iou.shape == (2,)
    # The image encoder exports to ONNX and ONNX Runtime gives the same embedding.
    import io
    x = torch.randn(1, 3, 64, 64)
    buf = io.BytesIO()
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        torch.onnx.export(sam.image_encoder, (x,), buf, input_names=['image'],
                          output_names=['embedding'], opset_version=17, dynamo=False)
    session = onnxruntime.InferenceSession(buf.getvalue(), providers=['CPUExecutionProvider'])
    with torch.no_grad():
        expected = sam.image_encoder(x).numpy()
    got = session.run(None, {'image': x.numpy()})[0]
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4)
    # A state dict with the official key names loads, with or without the unused classifier.
    full = tmp_path / 'mobile_sam_tiny.pt'
    torch.save(sam.state_dict(), full)
    loaded = load_sam_checkpoint(full, spec=spec)
    for (k, a), b in zip(sam.state_dict().items(), loaded.state_dict().values()):
        assert torch.equal(a, b), k
    bare = tmp_path / 'no_classifier.pt'
    torch.save({k: v for k, v in sam.state_dict().items()
                if not k.startswith(('image_encoder.head.', 'image_encoder.norm_head.'))}, bare)
    again = load_sam_checkpoint(bare, spec=spec)
    with torch.no_grad():
        torch.testing.assert_close(again.image_encoder(x), sam.image_encoder(x))
    # Another variant's weights, or a truncated file: one error naming the file.
    vit_b = tmp_path / 'sam_vit_b_tiny.pth'
    torch.save(build_sam(_tiny_spec()).state_dict(), vit_b)
    with pytest.raises(ModelError, match=r"sam_vit_b_tiny\.pth' does not match SAM vit_t: "
                                         r'.*missing'):
        load_sam_checkpoint(vit_b, spec=spec)
    cut = tmp_path / 'cut.pt'
    cut.write_bytes(full.read_bytes()[:2000])
    with pytest.raises(ModelError, match=r"cut\.pt'.*not a readable"):
        load_sam_checkpoint(cut, spec=spec)


def test_import_sam_writes_a_model_directory_the_instance_branch_loads(tmp_path, monkeypatch):
    from anomaly_perception.branches.instance import promptable
    from anomaly_perception.cli import main
    from anomaly_perception.runtime.manifest import load_manifest
    torch.manual_seed(0)
    spec = _tiny_vit_t_spec()
    sam = build_sam(spec)
    checkpoint = tmp_path / 'mobile_sam.pt'
    torch.save(sam.state_dict(), checkpoint)
    # The command takes the official variants; the tiny one stands in for vit_t here.
    real = promptable.sam_spec
    monkeypatch.setattr(promptable, 'sam_spec',
                        lambda variant, **c: spec if variant == 'vit_t' else real(variant, **c))
    from anomaly_perception.cli.runtime import SAM_VARIANT_NAMES
    assert SAM_VARIANT_NAMES == tuple(sorted(promptable.SAM_VARIANTS))
    out = tmp_path / 'instance_mobile_sam'
    assert main(['import-sam', str(checkpoint), '--variant', 'vit_t', '--out', str(out)]) == 0
    manifest = load_manifest(out, branch='instance')
    assert manifest['architecture'] == {'type': 'sam', 'spec': spec}
    assert manifest['provenance']['imported_from'] == 'mobile_sam.pt'
    seg, _ = promptable.load_promptable(out)
    rgb = np.random.default_rng(2).integers(0, 255, (40, 64, 3), dtype=np.uint8)
    ref = PromptableSegmenter(sam)
    for s in (seg, ref):
        s.set_image(rgb)
    pts = torch.tensor([[10.0, 10.0], [50.0, 30.0]])
    assert torch.equal(seg.masks_for_points(pts)[0], ref.masks_for_points(pts)[0])
    # A checkpoint of another variant is refused and nothing is written.
    vit_b = tmp_path / 'sam_vit_b.pth'
    torch.save(build_sam(_tiny_spec()).state_dict(), vit_b)
    assert main(['import-sam', str(vit_b), '--variant', 'vit_t', '--out',
                 str(tmp_path / 'wrong')]) == 1
    assert not (tmp_path / 'wrong').exists()


def test_prompts_outside_the_image_are_skipped_and_counted(tiny_sam):
    rgb = np.random.default_rng(3).integers(0, 255, (48, 80, 3), dtype=np.uint8)
    seg = PromptableSegmenter(tiny_sam)
    seg.set_image(rgb)
    good = torch.tensor([[5.0, 5.0], [70.0, 40.0]])
    bad = torch.tensor([[-1.0, 5.0], [80.0, 10.0], [10.0, 48.0], [float('nan'), 3.0]])
    masks, iou = seg.masks_for_points(torch.cat([good[:1], bad, good[1:]]))
    expected, expected_iou = seg.masks_for_points(good)
    assert seg.outside_points == 4
    assert torch.equal(masks[[0, 5]], expected) and not masks[1:5].any()
    torch.testing.assert_close(iou[[0, 5]], expected_iou)
    assert (iou[1:5] == 0).all()
    # UGainS keeps nothing of them: an empty mask never survives NMS.
    scores = ugains.mask_scores(masks, torch.zeros(48, 80))
    assert set(ugains.mask_nms(masks, scores).tolist()) <= {0, 5}
    with pytest.raises(ValueError, match=r'\[P, 2\]'):
        seg.masks_for_points(torch.zeros(3))

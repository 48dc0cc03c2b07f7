"""A promptable segmenter (SAM) for the instance branch, from Meta's ``segment-anything``.

``segment-anything`` (Apache-2.0) provides SAM's model classes; this module
builds them from a *spec* (a plain dict, stored in model manifests), loads
official checkpoints from a path the user gives with errors that name the
file and the architecture, and runs point prompts in batches on one image
embedding:

* :data:`SAM_VARIANTS`: the official layouts ``vit_b``, ``vit_l``,
  ``vit_h`` (1024-pixel input, 16-pixel patches, windowed attention with
  four global blocks, 256-dim prompts, a two-layer two-way transformer),
  and MobileSAM's ``vit_t`` (SAM's prompt encoder and decoder under a
  TinyViT-5M image encoder, :mod:`.tinyvit`);
* :func:`sam_spec` derives a spec from a variant with any field changed (the
  tests use a ViT-B *layout* with tiny dimensions; the project's own small
  default is such a spec too);
* :func:`build_sam` / :func:`load_sam_checkpoint`; :func:`import_sam_checkpoint`
  (``anomaly-perception import-sam``) makes a model directory of an
  official checkpoint, which the instance node loads as ``model_dir``;
* :class:`PromptableSegmenter`: ``set_image`` once per keyframe (the image
  embedding), then :meth:`~PromptableSegmenter.masks_for_points`: every
  point its own single positive prompt, ``prompt_batch`` prompts per
  decoder call, SAM's three masks each, the one with the highest predicted
  IoU kept (chosen at the decoder's resolution, then upsampled: the same
  result as upsampling all three), binarised at logit > 0.

Official checkpoints are state dicts of ``segment_anything.modeling.Sam``
(``sam_vit_b_01ec64.pth`` and friends); none ships here or can be
downloaded on the build machine, so only the loading path is tested, on
randomly initialised models of the same classes.
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

import copy
from functools import partial
from pathlib import Path

import torch

from .tinyvit import CLASSIFIER_KEYS
from .tinyvit import MOBILE_SAM
from .tinyvit import TinyViT
from ...runtime.manifest import load_manifest
from ...runtime.manifest import ModelError

PROMPTABLE_FILE = 'promptable.pt'   # the SAM state dict of a promptable model directory

_VIT = {'patch_size': 16, 'window_size': 14, 'mlp_ratio': 4.0, 'use_rel_pos': True}
_DECODER = {'depth': 2, 'mlp_dim': 2048, 'num_heads': 8, 'iou_head_hidden_dim': 256,
            'iou_head_depth': 3}
SAM_VARIANTS = {
    'vit_b': {'image_size': 1024, 'prompt_dim': 256,
              'encoder': {**_VIT, 'embed_dim': 768, 'depth': 12, 'num_heads': 12,
                          'global_attn_indexes': [2, 5, 8, 11]},
              'decoder': dict(_DECODER)},
    'vit_l': {'image_size': 1024, 'prompt_dim': 256,
              'encoder': {**_VIT, 'embed_dim': 1024, 'depth': 24, 'num_heads': 16,
                          'global_attn_indexes': [5, 11, 17, 23]},
              'decoder': dict(_DECODER)},
    'vit_h': {'image_size': 1024, 'prompt_dim': 256,
              'encoder': {**_VIT, 'embed_dim': 1280, 'depth': 32, 'num_heads': 16,
                          'global_attn_indexes': [7, 15, 23, 31]},
              'decoder': dict(_DECODER)},
    'vit_t': {'image_size': 1024, 'prompt_dim': 256, 'encoder': dict(MOBILE_SAM),
              'decoder': dict(_DECODER)},
}


def small_spec(image_size=256, prompt_dim=64, patch_size=8):
    """Return the spec of the project's small default: ERFNet's encoder under SAM's decoder.

    SAM's prompt encoder and mask decoder (a two-way transformer of depth 2)
    at ``prompt_dim`` with an :class:`ErfnetImageEncoder` (the pixel
    branch's encoder, which a pixel model can initialise) instead of a ViT.
    ``patch_size`` 8 keeps ERFNet's 1/8 grid (32x32 tokens at 256 pixels,
    masks at 1/2 of the input); 16 adds a stride-2 neck (SAM's 1/16 grid:
    an object of one token or less cannot be outlined, which is most
    anomalies at 256 pixels).
    """
    if int(patch_size) not in (8, 16):
        raise ModelError(f'ERFNet image encoder: patch_size must be 8 or 16, got {patch_size}')
    return {'variant': 'erfnet_small', 'image_size': int(image_size),
            'prompt_dim': int(prompt_dim),
            'encoder': {'type': 'erfnet', 'patch_size': int(patch_size)},
            'decoder': {'depth': 2, 'mlp_dim': 4 * int(prompt_dim), 'num_heads': 4,
                        'iou_head_hidden_dim': int(prompt_dim), 'iou_head_depth': 3}}


class ErfnetImageEncoder(torch.nn.Module):
    """SAM's image-encoder interface on ERFNet's encoder: ``[B, 3, S, S]`` -> ``[B, D, S/p]^2``.

    Takes the input SAM's ``preprocess`` makes (ImageNet-normalised, padded
    to ``img_size``), returns it to ERFNet's ``[0, 1]`` range, runs the
    encoder (1/8, 128 channels) and a neck (a 3x3 convolution to
    ``out_chans``, of stride 2 when ``patch_size`` is 16, then a 3x3
    convolution, with SAM's 2-D LayerNorms).
    """

    def __init__(self, img_size, out_chans, patch_size=16):
        super().__init__()
        from segment_anything.modeling.common import LayerNorm2d

        from ...models.erfnet import Encoder
        self.img_size = int(img_size)
        self.encoder = Encoder(1)
        self.neck = torch.nn.Sequential(
            torch.nn.Conv2d(128, out_chans, 3, stride=int(patch_size) // 8, padding=1),
            LayerNorm2d(out_chans),
            torch.nn.GELU(), torch.nn.Conv2d(out_chans, out_chans, 3, padding=1),
            LayerNorm2d(out_chans))
        self.register_buffer('mean', torch.tensor([123.675, 116.28, 103.53]).view(1, 3, 1, 1),
                             False)
        self.register_buffer('std', torch.tensor([58.395, 57.12, 57.375]).view(1, 3, 1, 1),
                             False)

    def forward(self, x):
        return self.neck(self.encoder((x * self.std + self.mean) / 255.0))


def sam_spec(variant='vit_b', **changes):
    """Return the spec of ``variant`` with ``changes`` applied.

    ``changes``: top-level keys (``image_size``, ``prompt_dim``) or
    ``encoder`` / ``decoder`` dicts merged into the variant's.
    """
    if variant not in SAM_VARIANTS:
        raise ModelError(f'unknown SAM variant {variant!r} (known: {", ".join(SAM_VARIANTS)})')
    spec = copy.deepcopy(SAM_VARIANTS[variant])
    spec['variant'] = variant
    for key, value in changes.items():
        if isinstance(value, dict):
            spec[key].update(value)
        else:
            spec[key] = value
    return spec


def build_sam(spec):
    """Build an (untrained) ``segment_anything.modeling.Sam`` from a spec."""
    try:
        from segment_anything.modeling import ImageEncoderViT
        from segment_anything.modeling import MaskDecoder
        from segment_anything.modeling import PromptEncoder
        from segment_anything.modeling import Sam
        from segment_anything.modeling import TwoWayTransformer
    except ImportError as err:  # pragma: no cover - exercised only without the package
        raise ModelError('the instance branch needs segment-anything (a requirement of this '
                         'package): pip install segment-anything') from err
    enc, dec = spec['encoder'], spec['decoder']
    size, dim = int(spec['image_size']), int(spec['prompt_dim'])
    patch = int(enc.get('patch_size', 16))
    if size % patch:
        raise ModelError(f'SAM spec: image_size {size} is not a multiple of the patch size '
                         f'{patch}')
    grid = size // patch
    if enc.get('type', 'vit') == 'erfnet':
        if patch not in (8, 16):
            raise ModelError(f'SAM spec: an ERFNet image encoder has patch_size 8 or 16, '
                             f'not {patch}')
        encoder = ErfnetImageEncoder(size, dim, patch)
    elif enc.get('type') == 'tiny_vit':
        if patch != 16:
            raise ModelError(f'SAM spec: a TinyViT image encoder has patch_size 16, not {patch}')
        try:
            encoder = TinyViT(size, dim, list(enc['embed_dims']), list(enc['depths']),
                              list(enc['num_heads']), list(enc['window_sizes']),
                              float(enc['mlp_ratio']), float(enc['mbconv_expand_ratio']),
                              int(enc['local_conv_size']), int(enc['num_classes']))
        except ValueError as err:
            raise ModelError(f'SAM spec: {err}') from None
    else:
        encoder = ImageEncoderViT(
            img_size=size, patch_size=patch, embed_dim=int(enc['embed_dim']),
            depth=int(enc['depth']), num_heads=int(enc['num_heads']),
            mlp_ratio=float(enc['mlp_ratio']), out_chans=dim, qkv_bias=True,
            norm_layer=partial(torch.nn.LayerNorm, eps=1e-6),
            use_rel_pos=bool(enc['use_rel_pos']), window_size=int(enc['window_size']),
            global_attn_indexes=tuple(int(i) for i in enc['global_attn_indexes']))
    prompt = PromptEncoder(embed_dim=dim, image_embedding_size=(grid, grid),
                           input_image_size=(size, size), mask_in_chans=16)
    decoder = MaskDecoder(
        num_multimask_outputs=3,
        transformer=TwoWayTransformer(depth=int(dec['depth']), embedding_dim=dim,
                                      mlp_dim=int(dec['mlp_dim']),
                                      num_heads=int(dec['num_heads'])),
        transformer_dim=dim, iou_head_depth=int(dec['iou_head_depth']),
        iou_head_hidden_dim=int(dec['iou_head_hidden_dim']))
    return Sam(image_encoder=encoder, prompt_encoder=prompt, mask_decoder=decoder,
               pixel_mean=[123.675, 116.28, 103.53], pixel_std=[58.395, 57.12, 57.375]).eval()


def load_sam_checkpoint(path, variant='vit_b', spec=None):
    """Build SAM ``variant`` (or ``spec``) and load an official checkpoint into it.

    Raises:
        ModelError: naming the file and the architecture, when the file does
            not exist, cannot be read as a PyTorch state dict, or holds
            weights of another architecture.

    """
    spec = spec or sam_spec(variant)
    what = f"SAM {spec.get('variant', variant)}"
    path = Path(path)
    if not path.is_file():
        raise ModelError(f'{str(path)!r}: no such SAM checkpoint (for {what}).')
    try:
        state = torch.load(path, map_location='cpu', weights_only=True)
    except Exception as err:  # noqa: B902 - torch raises many kinds for a bad file
        raise ModelError(f'{str(path)!r}: not a readable PyTorch checkpoint for {what} '
                         f'({type(err).__name__}: {err}).') from None
    if isinstance(state, dict) and isinstance(state.get('model'), dict):
        state = state['model']
    if not isinstance(state, dict) or not all(torch.is_tensor(v) for v in state.values()):
        raise ModelError(f'{str(path)!r}: not a state dict of tensors (for {what}).')
    model = build_sam(spec)
    own = model.state_dict()
    # TinyViT's ImageNet classifier is unused: a checkpoint may have it or not, of any size.
    unused = tuple(f'image_encoder.{k}' for k in CLASSIFIER_KEYS) \
        if spec['encoder'].get('type') == 'tiny_vit' else ()
    state = {k: v for k, v in state.items() if not (
        unused and k.startswith(unused) and (k not in own or own[k].shape != v.shape))}
    missing = sorted(k for k in set(own) - set(state) if not (unused and k.startswith(unused)))
    unexpected = sorted(set(state) - set(own))
    shapes = [f'{k} {tuple(state[k].shape)} vs {tuple(v.shape)}' for k, v in own.items()
              if k in state and state[k].shape != v.shape]
    if missing or unexpected or shapes:
        detail = '; '.join(part for part in (
            f'{len(missing)} missing (e.g. {missing[0]})' if missing else '',
            f'{len(unexpected)} unexpected (e.g. {unexpected[0]})' if unexpected else '',
            f'{len(shapes)} of other shapes (e.g. {shapes[0]})' if shapes else '') if part)
        raise ModelError(f'{str(path)!r} does not match {what}: {detail}.')
    model.load_state_dict(state, strict=not unused)
    return model.eval()


def import_sam_checkpoint(path, variant, out, *, overwrite=False):
    """Check an official SAM or MobileSAM checkpoint and write it as a promptable model directory.

    ``variant``: ``vit_b``, ``vit_l``, ``vit_h`` (Meta's ``sam_vit_*.pth``) or
    ``vit_t`` (MobileSAM's ``mobile_sam.pt``). The weights are loaded into
    the variant's architecture first (:func:`load_sam_checkpoint`), so a
    checkpoint of another variant or a truncated file is refused, naming
    the file, before anything is written; the directory is written
    atomically. Returns the manifest.

    Raises:
        ModelError: as :func:`load_sam_checkpoint`.

    """
    import hashlib
    import io

    from ...runtime.manifest import write_model_dir
    from ...training import training_environment
    spec = sam_spec(variant)
    sam = load_sam_checkpoint(path, spec=spec)
    buf = io.BytesIO()
    torch.save(sam.state_dict(), buf)
    source = hashlib.sha256(Path(path).read_bytes()).hexdigest()
    manifest = {'name': Path(out).name, 'branch': 'instance',
                'architecture': {'type': 'sam', 'spec': spec},
                'provenance': {'imported_from': Path(path).name, 'source_sha256': source,
                               **training_environment()}}
    return write_model_dir(out, manifest, {PROMPTABLE_FILE: buf.getvalue()},
                           overwrite=overwrite)


class PromptableSegmenter:
    """Point prompts -> one mask each, on one image embedding at a time (see module docs)."""

    def __init__(self, sam, device='cpu', prompt_batch=64):
        from segment_anything import SamPredictor
        self.outside_points = 0         # prompts outside the image (or not finite), skipped
        self.sam = sam.to(device).eval()
        self.predictor = SamPredictor(self.sam)
        self.prompt_batch = int(prompt_batch)
        if self.prompt_batch < 1:
            raise ValueError(f'prompt_batch must be >= 1, got {prompt_batch}')

    @property
    def device(self):
        return self.sam.device

    @torch.no_grad()
    def set_image(self, rgb):
        """Compute the image embedding of an RGB uint8 image ``[H, W, 3]``."""
        self.predictor.set_image(rgb, image_format='RGB')

    @torch.no_grad()
    def masks_for_points(self, points_xy):
        """Return ``(masks bool [P, H, W], predicted IoU [P])`` for points ``(x, y)``.

        Points are in the pixel coordinates of the image given to
        :meth:`set_image`; masks come at that image's resolution. A point
        outside the image (or not finite) gets an empty mask and predicted
        IoU 0, and is counted in ``outside_points`` (UGainS then drops it:
        an empty mask never survives NMS).

        Raises:
            ValueError: points that are not ``[P, 2]``.

        """
        p = self.predictor
        if not p.is_image_set:
            raise RuntimeError('set_image before masks_for_points')
        h, w = p.original_size
        points = torch.as_tensor(points_xy, dtype=torch.float32, device=self.device)
        if points.dim() != 2 or points.shape[1] != 2:
            raise ValueError(f'expected points (x, y) [P, 2], got {tuple(points.shape)}')
        inside = (torch.isfinite(points).all(dim=1) & (points[:, 0] >= 0) & (points[:, 0] < w)
                  & (points[:, 1] >= 0) & (points[:, 1] < h))
        if not bool(inside.all()):
            self.outside_points += int((~inside).sum())
            masks = torch.zeros(len(points), h, w, dtype=torch.bool, device=self.device)
            ious = torch.zeros(len(points), device=self.device)
            if bool(inside.any()):
                masks[inside], ious[inside] = self.masks_for_points(points[inside])
            return masks, ious
        if len(points) == 0:
            return (torch.zeros(0, h, w, dtype=torch.bool, device=self.device),
                    torch.zeros(0, device=self.device))
        coords = p.transform.apply_coords_torch(points, p.original_size)[:, None, :]
        labels = torch.ones(len(points), 1, dtype=torch.int64, device=self.device)
        masks, ious = [], []
        for start in range(0, len(points), self.prompt_batch):
            sl = slice(start, start + self.prompt_batch)
            sparse, dense = self.sam.prompt_encoder(points=(coords[sl], labels[sl]), boxes=None,
                                                    masks=None)
            low_res, iou = self.sam.mask_decoder(
                image_embeddings=p.features, image_pe=self.sam.prompt_encoder.get_dense_pe(),
                sparse_prompt_embeddings=sparse, dense_prompt_embeddings=dense,
                multimask_output=True)
            best = iou.argmax(dim=1)
            rows = torch.arange(len(best), device=best.device)
            chosen = low_res[rows, best][:, None]
            full = self.sam.postprocess_masks(chosen, p.input_size, p.original_size)
            masks.append(full[:, 0] > self.sam.mask_threshold)
            ious.append(iou[rows, best])
        return torch.cat(masks), torch.cat(ious)


def load_promptable(model_dir, device='cpu', prompt_batch=64):
    """Load a promptable model directory (``train promptable``): ``(segmenter, manifest)``.

    Raises:
        ModelError: not a model directory, another branch or architecture,
            or weights that do not match the manifest's spec (naming the file).

    """
    manifest = load_manifest(model_dir, branch='instance')
    arch = manifest.get('architecture') or {}
    if arch.get('type') == 'click_crops' and isinstance(arch.get('spec'), dict):
        return _load_click_crops(Path(model_dir), arch['spec'], device, prompt_batch), manifest
    if arch.get('type') != 'sam' or not isinstance(arch.get('spec'), dict):
        raise ModelError(f'{str(model_dir)!r} is not a promptable segmenter (architecture '
                         f'{arch.get("type")!r}, expected sam or click_crops with a spec).')
    sam = load_sam_checkpoint(Path(model_dir) / PROMPTABLE_FILE, spec=arch['spec'])
    return PromptableSegmenter(sam, device, prompt_batch), manifest


def _load_click_crops(model_dir, spec, device, prompt_batch):
    from .clickcrops import build_clicknet
    from .clickcrops import ClickCropSegmenter
    from .clickcrops import crops_spec
    path = model_dir / PROMPTABLE_FILE
    try:
        spec = crops_spec(**spec)
        net = build_clicknet(spec)
    except (TypeError, ValueError) as err:
        raise ModelError(f'{str(model_dir)!r}: a click_crops spec that does not build '
                         f'({err}).') from None
    try:
        state = torch.load(path, map_location='cpu', weights_only=True)
    except Exception as err:  # noqa: B902 - torch raises many kinds for a bad file
        raise ModelError(f'{str(path)!r}: not a readable click_crops state dict '
                         f'({type(err).__name__}: {err}).') from None
    try:
        net.load_state_dict(state)
    except (RuntimeError, TypeError, AttributeError) as err:
        first = str(err).splitlines()[0]
        raise ModelError(f'{str(path)!r} does not match its click_crops spec ({first}).') \
            from None
    return ClickCropSegmenter(net, spec, device=device, prompt_batch=prompt_batch)

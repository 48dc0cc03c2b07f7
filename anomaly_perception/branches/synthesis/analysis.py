"""Paper 001's analysis: what changed between an input and its edit, per pixel.

Distances (higher: more changed), each ``float32 [N, H, W]`` at the images'
resolution, from float images ``[N, 3, H, W]`` in [0, 1]:

* :func:`rgb_distance`: the Euclidean RGB difference / sqrt(3), in [0, 1]
  (the paper's weak baseline);
* :func:`ssim_distance`: ``(1 - SSIM) / 2`` of the grey images, Gaussian
  window (sigma 1.5, 11 px), in [0, 1] (the paper's first row);
* :func:`feature_distance`: the cosine distance ``(1 - cos) / 2`` of two
  images' features, per scale upsampled (bilinear) to the image and
  averaged over scales. The default feature space is the pixel branch's
  ERFNet (:class:`ErfnetFeatures`: its encoder at 1/2, 1/4 and 1/8 and its
  decoder at 1/2): no CLIP/MaskCLIP/FeatUp weights exist here. A user's
  own extractor loads from a TorchScript file (:func:`load_feature_extractor`).

Segment refinement (:func:`refine_by_segments`): each segment's pixels get
the segment's mean distance; pixels in no segment keep theirs. Segments
come from :func:`slic_superpixels` (SLIC, written here: OpenCV's is in the
contrib build, which this package does not depend on) or from the
instance branch's promptable segmenter prompted on a grid.
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

import math

import numpy as np
import torch
import torch.nn.functional as F

from ...errors import AnomalyPerceptionError


class SynthesisError(AnomalyPerceptionError):
    """Guided editing cannot run with these options or this model."""


def rgb_distance(a, b):
    """Return ``||a - b||_2 / sqrt(3)`` per pixel (``[N, 3, H, W]`` in [0, 1] -> ``[N, H, W]``)."""
    return ((a - b).pow(2).sum(1) / 3.0).sqrt()


def _gaussian_window(sigma=1.5, size=11, dtype=torch.float32):
    x = torch.arange(size, dtype=dtype) - (size - 1) / 2
    g = torch.exp(-x ** 2 / (2 * sigma ** 2))
    g = g / g.sum()
    return (g[:, None] * g[None, :])[None, None]


def ssim_map(a, b, sigma=1.5, size=11, data_range=1.0):
    """Return the SSIM map of the grey images of ``a`` and ``b`` (Wang et al. 2004 constants)."""
    weights = torch.tensor([0.299, 0.587, 0.114], dtype=a.dtype).view(1, 3, 1, 1)
    x, y = (a * weights).sum(1, keepdim=True), (b * weights).sum(1, keepdim=True)
    window = _gaussian_window(sigma, size, a.dtype)
    pad = size // 2

    def blur(v):
        return F.conv2d(F.pad(v, (pad,) * 4, mode='reflect'), window)
    mx, my = blur(x), blur(y)
    vx = blur(x * x) - mx * mx
    vy = blur(y * y) - my * my
    cxy = blur(x * y) - mx * my
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    ssim = ((2 * mx * my + c1) * (2 * cxy + c2)) / ((mx * mx + my * my + c1) * (vx + vy + c2))
    return ssim[:, 0]


def ssim_distance(a, b):
    """Return ``(1 - SSIM) / 2`` per pixel, in [0, 1]."""
    return ((1 - ssim_map(a, b)) / 2).clamp(0, 1)


def feature_distance(extractor, a, b):
    """Return the cosine distance ``(1 - cos) / 2`` of ``extractor``'s features, scale-averaged."""
    height, width = a.shape[-2:]
    with torch.no_grad():
        fa, fb = extractor(a), extractor(b)
    if torch.is_tensor(fa):
        fa, fb = [fa], [fb]
    total = torch.zeros((a.shape[0], height, width), dtype=torch.float32)
    for u, v in zip(fa, fb):
        cos = F.cosine_similarity(u.float(), v.float(), dim=1, eps=1e-6)
        cos = F.interpolate(cos[:, None], size=(height, width), mode='bilinear',
                            align_corners=False)[:, 0]
        total += (1 - cos) / 2
    return total / len(fa)


class ErfnetFeatures(torch.nn.Module):
    """Multi-scale features of an ERFNet: encoder at 1/2, 1/4, 1/8 and decoder at 1/2.

    Takes float images ``[N, 3, H, W]`` in [0, 1] (the pixel branch's
    scaling); H and W are padded (replicated) to multiples of 8 and the
    features cropped back.
    """

    def __init__(self, erfnet):
        super().__init__()
        self.erfnet = erfnet.eval()

    def forward(self, x):
        h, w = x.shape[-2:]
        ph, pw = (-h) % 8, (-w) % 8
        if ph or pw:
            x = F.pad(x, (0, pw, 0, ph), mode='replicate')
        dtype = next(self.erfnet.parameters()).dtype
        enc = self.erfnet.encoder
        f = enc.initial(x.to(dtype))
        out = [f]
        for i, layer in enumerate(enc.layers):
            if i > 0 and type(layer).__name__ == 'Downsampler':
                out.append(f)
            f = layer(f)
        out.append(f)
        _, dec = self.erfnet.decoder(f, return_features=True)
        out.append(dec)
        crops = []
        for v in out:
            scale = x.shape[-1] / v.shape[-1]
            crops.append(v[..., :max(1, math.ceil(h / scale)), :max(1, math.ceil(w / scale))])
        return crops


def erfnet_features(pixel_model_dir):
    """Return :class:`ErfnetFeatures` of a pixel model (with or without a failure head)."""
    from ...runtime.network import load_network
    module, manifest = load_network(pixel_model_dir, branch='pixel')
    kind = manifest['architecture']['type']
    if kind == 'erfnet_pixel':
        return ErfnetFeatures(module.network)
    if kind == 'erfnet_pixel_fsnet':
        return ErfnetFeatures(module.segmenter.network)
    raise SynthesisError(f'{str(pixel_model_dir)!r} is a {kind!r} pixel model; the feature '
                         'space needs an ERFNet one (erfnet_pixel or erfnet_pixel_fsnet).')


def load_feature_extractor(path):
    """Load a user's feature extractor: a ``torch.export`` program (``.pt2``) or TorchScript.

    The module maps float images ``[N, 3, H, W]`` in [0, 1] to a feature
    map ``[N, C, h, w]`` or a list of them (several scales). An exported
    program must have been exported with the image size it is given
    (or dynamic sizes).
    """
    import warnings
    import zipfile
    path = str(path)
    try:
        if path.endswith('.pt2'):
            return torch.export.load(path).module()
        with warnings.catch_warnings():
            warnings.simplefilter('ignore', FutureWarning)    # TorchScript is deprecated
            return torch.jit.load(path, map_location='cpu').eval()
    except (RuntimeError, ValueError, OSError, KeyError, zipfile.BadZipFile) as err:
        kind = 'torch.export program' if path.endswith('.pt2') else 'TorchScript module'
        raise SynthesisError(f'{path!r} is not a {kind} (a feature extractor): '
                             f'{err}') from None


def slic_superpixels(image, segments=200, compactness=10.0, iterations=8):
    """Return SLIC superpixel labels ``int32 [H, W]`` (0..K-1) of a uint8 RGB image.

    Achanta et al.'s k-means in (CIELAB, x, y) with centres on a grid of
    step ``S = sqrt(HW / segments)``, each centre searching a 2S x 2S window;
    ``compactness`` weighs space against colour. Connectivity is not
    enforced: a label can have detached pieces.
    """
    import cv2
    h, w = image.shape[:2]
    lab = cv2.cvtColor(image, cv2.COLOR_RGB2LAB).astype(np.float32)
    step = max(1, int(round(math.sqrt(h * w / max(1, segments)))))
    ys = np.arange(step // 2, h, step)
    xs = np.arange(step // 2, w, step)
    cy, cx = [v.ravel().astype(np.float32) for v in np.meshgrid(ys, xs, indexing='ij')]
    colours = lab[cy.astype(int), cx.astype(int)]
    labels = np.zeros((h, w), np.int32)
    weight = (compactness / step) ** 2
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    for _ in range(iterations):
        best = np.full((h, w), np.inf, np.float32)
        for k in range(len(cy)):
            y0, y1 = int(max(0, cy[k] - step)), int(min(h, cy[k] + step + 1))
            x0, x1 = int(max(0, cx[k] - step)), int(min(w, cx[k] + step + 1))
            d = (((lab[y0:y1, x0:x1] - colours[k]) ** 2).sum(-1)
                 + weight * ((yy[y0:y1, x0:x1] - cy[k]) ** 2 + (xx[y0:y1, x0:x1] - cx[k]) ** 2))
            window = best[y0:y1, x0:x1]
            closer = d < window
            window[closer] = d[closer]
            labels[y0:y1, x0:x1][closer] = k
        count = np.bincount(labels.ravel(), minlength=len(cy)).astype(np.float32)
        keep = count > 0
        for arr, values in ((cy, yy), (cx, xx)):
            arr[keep] = (np.bincount(labels.ravel(), values.ravel(), len(cy)) / np.maximum(
                count, 1))[keep]
        for c in range(3):
            colours[keep, c] = (np.bincount(labels.ravel(), lab[..., c].ravel(), len(cy))
                                / np.maximum(count, 1))[keep]
    _, labels = np.unique(labels, return_inverse=True)
    return labels.reshape(h, w).astype(np.int32)


def refine_by_segments(distance, segments):
    """Give every segment's pixels its mean ``distance``; label < 0: in no segment (kept).

    ``distance``: float ``[H, W]``; ``segments``: int ``[H, W]``.
    """
    distance = np.asarray(distance, np.float32)
    segments = np.asarray(segments)
    if segments.shape != distance.shape:
        raise SynthesisError(f'segments {segments.shape} and distance {distance.shape} differ.')
    out = distance.copy()
    covered = segments >= 0
    inside = covered & np.isfinite(distance)
    if not inside.any():
        return out
    n = int(segments.max()) + 1
    ids = segments[inside].astype(np.int64)
    counts = np.bincount(ids, minlength=n)
    with np.errstate(invalid='ignore', divide='ignore'):
        means = (np.bincount(ids, distance[inside], minlength=n) / counts).astype(np.float32)
    refined = means[segments[covered]]
    out[covered] = np.where(np.isfinite(refined), refined, out[covered])
    return out


def promptable_segments(segmenter, rgb, grid=16, min_iou=0.5):
    """Return segments ``int32 [H, W]`` (-1: none) from a promptable segmenter on a point grid.

    ``grid x grid`` single-point prompts at cell centres; masks whose
    predicted IoU is below ``min_iou`` are dropped; overlaps go to the
    *smallest* mask covering a pixel (the public code gives them to the
    largest, which lets a big floor segment swallow a small anomaly;
    METHODS.md 1.5).
    """
    h, w = rgb.shape[:2]
    segmenter.set_image(rgb)
    ys = (np.arange(grid) + 0.5) * h / grid
    xs = (np.arange(grid) + 0.5) * w / grid
    points = np.stack(np.meshgrid(xs, ys), -1).reshape(-1, 2).astype(np.float32)
    masks, iou = segmenter.masks_for_points(points)
    masks = masks[iou >= min_iou].cpu().numpy()
    labels = np.full((h, w), -1, np.int64)
    if not len(masks):
        return labels.astype(np.int32)
    areas = masks.reshape(len(masks), -1).sum(1)
    for k, i in enumerate(np.argsort(-areas, kind='stable')):
        labels[masks[i]] = k
    ids, inverse = np.unique(labels, return_inverse=True)
    inverse = inverse.reshape(h, w)
    return np.where(labels < 0, -1, inverse - int(ids[0] < 0)).astype(np.int32)

"""A promptable segmenter by early fusion of the click, on crops around it (``click_crops``).

The instance branch's second promptable design (the first is SAM's late
fusion, :mod:`.promptable`). RITM and SimpleClick feed the clicks to the
network as input channels; this does that on a **window around each
click** instead of the whole frame, so that every prompt costs a small
fixed input and small objects keep their pixels:

* Per prompt, ``len(scales)`` square windows centred on the click, of
  side ``scale * min(H, W)`` pixels (default 0.12, 0.35 and 0.9 of the
  short side: a screw, a box, a person), each resampled to
  ``crop_size`` (64) pixels (bilinear; zeros outside the image).
* Input: the crop's RGB in [-0.5, 0.5] and the click as a Gaussian
  (sigma ``crop_size / 16``) at its position in the crop: 4 channels.
* :class:`ClickNet`: a small U-Net (16-32-64 channels at strides 2-8,
  dilated residual blocks at 1/8, one full-size refinement) -> one mask
  logit map per crop and a
  predicted IoU (of that crop's mask, pasted back, with the *whole*
  object: a small window on a large object predicts a low IoU).
* The window kept (``choice`` in the spec): ``smallest_inside`` (the
  default), the smallest window whose mask is not empty and does not
  touch the window's edge inside the image (the object fits in it), else
  the largest non-empty one; or ``predicted_iou``, the highest predicted
  IoU, as SAM picks among its three outputs. On validation clicks
  ``smallest_inside`` gives 0.303 mean IoU against 0.238 (docs/RESULTS.md).
  The kept logits are resized to the window and pasted into a full-size
  mask at logit > 0 (the parts of the window outside the image dropped).

:class:`ClickCropSegmenter` has :class:`~.promptable.PromptableSegmenter`'s
interface (``set_image``, ``masks_for_points``, ``device``,
``outside_points``), so UGainS, the node and ``experiment ugains`` run it
unchanged. All the prompts of a keyframe go through the network in
batches of ``prompt_batch`` windows.
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

import torch
from torch import nn
import torch.nn.functional as F

ARCHITECTURE = 'click_crops'
CHOICES = ('smallest_inside', 'predicted_iou')
EDGE = 2                # crop cells at the window's edge that a fitting mask does not touch


def crops_spec(crop_size=64, scales=(0.12, 0.35, 0.9), widths=(16, 32, 64),
               choice='smallest_inside'):
    """Return the spec (stored in the manifest) of a click-crops segmenter."""
    if choice not in CHOICES:
        raise ValueError(f"choice must be one of {', '.join(CHOICES)}, got {choice!r}")
    scales = [float(s) for s in scales]
    if not scales or any(not 0.0 < s <= 2.0 for s in scales):
        raise ValueError(f'scales must be in (0, 2], got {scales}')
    if int(crop_size) % 8 or int(crop_size) < 16:
        raise ValueError(f'crop_size must be a multiple of 8, at least 16, got {crop_size}')
    if len(widths) != 3:
        raise ValueError(f'widths: three channel counts, got {widths}')
    return {'crop_size': int(crop_size), 'scales': scales, 'widths': [int(w) for w in widths],
            'choice': choice}


def _conv(cin, cout, stride=1, dilation=1):
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, dilation, dilation, bias=False),
                         nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


class _Residual(nn.Module):

    def __init__(self, ch, dilation):
        super().__init__()
        self.a = _conv(ch, ch, dilation=dilation)
        self.b = nn.Sequential(nn.Conv2d(ch, ch, 3, 1, dilation, dilation, bias=False),
                               nn.BatchNorm2d(ch))

    def forward(self, x):
        return F.relu(x + self.b(self.a(x)))


class ClickNet(nn.Module):
    """``[N, 4, S, S]`` (RGB, click) -> mask logits ``[N, S, S]`` and predicted IoU ``[N]``.

    Strided from the first layer (the costly full-resolution layers are one
    small refinement at the end): widths ``(a, b, c)`` at 1/2, 1/4 and 1/8
    of the window, dilated residual blocks (1, 2, 4) at 1/8, a U-Net
    decoder back to 1/2, and at full size one convolution over the decoder's
    upsampled features and the input itself.
    """

    def __init__(self, widths=(16, 32, 64)):
        super().__init__()
        a, b, c = widths
        self.enc1 = nn.Sequential(_conv(4, a, 2), _conv(a, a))
        self.enc2 = nn.Sequential(_conv(a, b, 2), _Residual(b, 1))
        self.enc3 = nn.Sequential(_conv(b, c, 2), _Residual(c, 1), _Residual(c, 2),
                                  _Residual(c, 4))
        self.dec2 = _conv(c + b, b)
        self.dec1 = _conv(b + a, a)
        self.refine = nn.Sequential(_conv(a + 4, 8), nn.Conv2d(8, 1, 1))
        self.iou = nn.Sequential(nn.Linear(2 * c + a, 64), nn.ReLU(inplace=True),
                                 nn.Linear(64, 1))

    def forward(self, x):
        e1 = self.enc1(x)
        e2 = self.enc2(e1)
        e3 = self.enc3(e2)

        def up(t, size):
            return F.interpolate(t, size=size, mode='bilinear', align_corners=False)
        d2 = self.dec2(torch.cat([up(e3, e2.shape[-2:]), e2], dim=1))
        d1 = self.dec1(torch.cat([up(d2, e1.shape[-2:]), e1], dim=1))
        logits = self.refine(torch.cat([up(d1, x.shape[-2:]), x], dim=1))
        # The IoU head sees the object's features (pooled under the soft mask) and the context.
        soft = logits.sigmoid()
        half = F.interpolate(soft, size=d1.shape[-2:], mode='area')
        inside = (d1 * half).flatten(2).sum(-1) / half.flatten(2).sum(-1).clamp(min=1e-3)
        small = F.interpolate(soft, size=e3.shape[-2:], mode='area')
        obj = (e3 * small).flatten(2).sum(-1) / small.flatten(2).sum(-1).clamp(min=1e-3)
        iou = self.iou(torch.cat([obj, e3.mean(dim=(2, 3)), inside], dim=1))[:, 0]
        return logits[:, 0], iou


def window_sides(scales, shape):
    """Window sides in pixels for an image of ``shape`` ``(H, W)``: ``scale * min(H, W)``."""
    short = min(int(shape[0]), int(shape[1]))
    return [max(4.0, s * short) for s in scales]


def crop_grid(centres_xy, sides, shape, size, offsets=None):
    """``grid_sample`` grids ``[N, size, size, 2]`` of square windows on an image of ``shape``.

    Window ``n`` has side ``sides[n]`` pixels and is centred on
    ``centres_xy[n] + offsets[n]`` (pixel coordinates, ``align_corners``
    convention: pixel ``i`` is at ``i``).
    """
    h, w = shape
    centres = centres_xy if offsets is None else centres_xy + offsets
    t = (torch.arange(size, dtype=torch.float32, device=centres.device) + 0.5) / size - 0.5
    half = sides[:, None]
    xs = centres[:, :1] + t[None] * half          # [N, S] pixel x of each column
    ys = centres[:, 1:] + t[None] * half
    gx = xs / max(w - 1, 1) * 2 - 1
    gy = ys / max(h - 1, 1) * 2 - 1
    return torch.stack([gx[:, None, :].expand(-1, size, -1),
                        gy[:, :, None].expand(-1, -1, size)], dim=-1)


def click_map(points_in_crop, size, sigma):
    """Gaussian click maps ``[N, 1, size, size]`` at ``(x, y)`` crop pixel coordinates."""
    t = torch.arange(size, dtype=torch.float32, device=points_in_crop.device) + 0.5
    dx = (t[None] - points_in_crop[:, :1]) ** 2
    dy = (t[None] - points_in_crop[:, 1:]) ** 2
    return torch.exp(-(dy[:, :, None] + dx[:, None, :]) / (2 * sigma ** 2))[:, None]


def sample_windows(images, owner, grid, mode='bilinear'):
    """``grid_sample`` window ``n`` from ``images[owner[n]]`` (``[B, C, H, W]``), zeros outside.

    One call per image (the image expanded, not copied, over its windows).
    """
    out = images.new_zeros((len(grid), images.shape[1], *grid.shape[1:3]))
    for b in torch.unique(owner).tolist():
        rows = torch.nonzero(owner == b)[:, 0]
        out[rows] = F.grid_sample(images[b:b + 1].expand(len(rows), -1, -1, -1), grid[rows],
                                  mode=mode, padding_mode='zeros', align_corners=True)
    return out


def inside_image(grid, shape):
    """Bool ``[N, S, S]``: the window pixels that fall inside an image of ``shape``."""
    h, w = shape
    x = (grid[..., 0] + 1) / 2 * max(w - 1, 1)
    y = (grid[..., 1] + 1) / 2 * max(h - 1, 1)
    return (x > -0.5) & (x < w - 0.5) & (y > -0.5) & (y < h - 0.5)


def network_input(images, owner, grid, clicks_in_crop, size):
    """Windows of ``images`` (float ``[B, 3, H, W]`` in [0, 1]) and their click maps."""
    rgb = sample_windows(images, owner, grid) - 0.5
    return torch.cat([rgb, click_map(clicks_in_crop, size, size / 16)], dim=1)


def build_clicknet(spec):
    """Build an untrained :class:`ClickNet` for ``spec`` (:func:`crops_spec`)."""
    return ClickNet(tuple(spec['widths']))


class ClickCropSegmenter:
    """Point prompts -> one mask each, from windows around the clicks (see module docs)."""

    def __init__(self, net, spec, device='cpu', prompt_batch=64):
        self.net = net.to(device).eval()
        self.spec = dict(spec)
        self.prompt_batch = int(prompt_batch)
        if self.prompt_batch < 1:
            raise ValueError(f'prompt_batch must be >= 1, got {prompt_batch}')
        self.outside_points = 0
        self._image = None

    @property
    def device(self):
        return next(self.net.parameters()).device

    @torch.no_grad()
    def set_image(self, rgb):
        """Keep an RGB uint8 image ``[H, W, 3]`` for the prompts that follow."""
        t = torch.as_tensor(rgb, device=self.device)
        if t.dim() != 3 or t.shape[2] != 3:
            raise ValueError(f'expected an RGB image [H, W, 3], got {tuple(t.shape)}')
        self._image = t.permute(2, 0, 1)[None].float() / 255.0

    @torch.no_grad()
    def window_logits(self, points_xy):
        """Logits ``[P, K, S, S]``, predicted IoU ``[P, K]`` and window sides ``[K]``."""
        h, w = self._image.shape[-2:]
        size = self.spec['crop_size']
        sides = torch.tensor(window_sides(self.spec['scales'], (h, w)), device=self.device)
        k = len(sides)
        centres = points_xy.repeat_interleave(k, dim=0)
        side = sides.repeat(len(points_xy))
        centre_in_crop = torch.full((len(centres), 2), size / 2.0, device=self.device)
        logits, ious = [], []
        for start in range(0, len(centres), self.prompt_batch):
            sl = slice(start, start + self.prompt_batch)
            grid = crop_grid(centres[sl], side[sl], (h, w), size)
            owner = torch.zeros(len(grid), dtype=torch.long, device=self.device)
            x = network_input(self._image, owner, grid, centre_in_crop[sl], size)
            lg, iou = self.net(x)
            logits.append(lg)
            ious.append(iou)
        logits = torch.cat(logits).view(len(points_xy), k, size, size)
        return logits, torch.cat(ious).view(len(points_xy), k), sides

    @torch.no_grad()
    def masks_for_points(self, points_xy):
        """Return ``(masks bool [P, H, W], predicted IoU [P])`` for points ``(x, y)``.

        As :meth:`~.promptable.PromptableSegmenter.masks_for_points`: points
        outside the image (or not finite) get an empty mask and IoU 0, and
        are counted in ``outside_points``.
        """
        if self._image is None:
            raise RuntimeError('set_image before masks_for_points')
        h, w = self._image.shape[-2:]
        points = torch.as_tensor(points_xy, dtype=torch.float32, device=self.device)
        if points.dim() != 2 or points.shape[1] != 2:
            raise ValueError(f'expected points (x, y) [P, 2], got {tuple(points.shape)}')
        masks = torch.zeros(len(points), h, w, dtype=torch.bool, device=self.device)
        best_iou = torch.zeros(len(points), device=self.device)
        inside = (torch.isfinite(points).all(dim=1) & (points[:, 0] >= 0) & (points[:, 0] < w)
                  & (points[:, 1] >= 0) & (points[:, 1] < h))
        self.outside_points += int((~inside).sum())
        if not bool(inside.any()):
            return masks, best_iou
        rows = torch.nonzero(inside)[:, 0]
        logits, ious, sides = self.window_logits(points[rows])
        best = ious.argmax(dim=1) if self.spec.get('choice') == 'predicted_iou' else \
            smallest_inside(logits, points[rows], sides, (h, w))
        for j, p in enumerate(rows.tolist()):
            b = int(best[j])
            best_iou[p] = ious[j, b]
            paste_window(masks[p], logits[j, b], points[p], float(sides[b]))
        return masks, best_iou


def smallest_inside(logits, points_xy, sides, shape):
    """Index ``[P]`` of the smallest window whose mask fits in it (module docs).

    ``logits`` ``[P, K, S, S]`` of windows ``sides`` ``[K]`` (smallest first)
    centred on ``points_xy``; a mask fits when it is not empty and has no
    positive cell within ``EDGE`` cells of the window's border, among the
    cells inside the image of ``shape`` ``(h, w)`` (an object cut by the
    image's edge still fits). None fits: the largest non-empty window.
    """
    h, w = shape
    p, k, s, _ = logits.shape
    positive = logits > 0
    t = (torch.arange(s, device=logits.device, dtype=torch.float32) + 0.5) / s
    sides = torch.as_tensor(sides, dtype=torch.float32, device=logits.device)
    offset = sides[None, :, None] * (t[None, None, :] - 0.5)              # [1, K, S]
    xs = points_xy[:, 0, None, None] + offset
    ys = points_xy[:, 1, None, None] + offset
    inside = ((ys >= 0) & (ys < h))[..., :, None] & ((xs >= 0) & (xs < w))[..., None, :]
    edge = torch.zeros(s, s, dtype=torch.bool, device=logits.device)
    edge[:EDGE] = edge[-EDGE:] = True
    edge[:, :EDGE] = edge[:, -EDGE:] = True
    touches = (positive & inside & edge).flatten(2).any(dim=2)
    nonempty = positive.flatten(2).any(dim=2)
    fits = nonempty & ~touches
    order = torch.arange(k, device=logits.device)
    first_fit = torch.where(fits, order, k).amin(dim=1)
    last_nonempty = torch.where(nonempty, order, -1).amax(dim=1).clamp(min=0)
    return torch.where(first_fit < k, first_fit, torch.where(nonempty.any(dim=1),
                                                             last_nonempty, k - 1))


def paste_window(mask, logits, centre_xy, side):
    """Write ``logits > 0`` (``[S, S]``, a window of ``side`` px on a centre) into ``mask``."""
    h, w = mask.shape
    x0 = float(centre_xy[0]) - side / 2
    y0 = float(centre_xy[1]) - side / 2
    # Pixel i of the image lies at crop coordinate (i - x0) / side * S - 0.5.
    c0, c1 = max(0, int(x0 + 0.5)), min(w, int(x0 + side + 0.5))
    r0, r1 = max(0, int(y0 + 0.5)), min(h, int(y0 + side + 0.5))
    if c1 <= c0 or r1 <= r0:
        return
    xs = (torch.arange(c0, c1, dtype=torch.float32, device=logits.device) - x0) / side
    ys = (torch.arange(r0, r1, dtype=torch.float32, device=logits.device) - y0) / side
    grid = torch.stack([(xs * 2 - 1)[None, :].expand(len(ys), -1),
                        (ys * 2 - 1)[:, None].expand(-1, len(xs))], dim=-1)
    up = F.grid_sample(logits[None, None], grid[None], mode='bilinear',
                       padding_mode='border', align_corners=False)[0, 0]
    mask[r0:r1, c0:c1] = up > 0

"""FSNet (Rahman et al., paper 004): a failure head beside the pixel branch's ERFNet.

The segmenter ``S`` (ERFNet: encoder ``S_E``, decoder ``S_D``) gives logits
``l``; the head ``F`` predicts, per pixel, the probability that the
segmenter's class there is wrong. From ``l`` it derives four single-channel
maps at the input resolution (:func:`logit_maps`):

* ``w1`` = a learned 1x1 convolution of all logits (void included);
* ``w2`` = the maximum softmax probability over the normal classes;
* ``w3`` = sigmoid(entropy of that softmax);
* ``w4`` = the arg-max class over the normal classes, divided by
  ``K - 1`` (``K`` normal classes) so it lies in [0, 1] like the others (the
  paper feeds the raw index; the scale is ours).

``w2``-``w4`` use the normal classes because the deployed prediction is the
arg-max over them (a void/outlier channel is not a class a planner gets).

Two encoders of ResNet-18's layout (:class:`ResNet18Trunk`: torchvision's
blocks and names, its first convolution taking the branch's channels, no
classifier; by default at a quarter of torchvision's width, see
:class:`FailureHeadSpec`), ``F_E1`` on ``x`` (+) ``w1`` and ``F_E2`` on
``w1`` (+) ``w2`` (+) ``w3`` (+) ``w4``, each to ``8 * resnet_width``
channels at 1/32; ``z = F_E1 (+) F_E2 (+) S_E(x)`` concatenated on
``S_E``'s grid; a decoder ``F_D`` back to the input resolution; a sigmoid
of its one channel is the failure probability.

**Resolution alignment** (the paper leaves it open): the two ResNet
outputs are upsampled bilinearly from 1/32 to ERFNet's encoder grid (1/8,
128 channels), where the three are concatenated; ``F_D``
is a 3x3 convolution to 128 channels and ERFNet's own decoder layout
(two upsamplers with a non-bottleneck block each, then a 2x2 transposed
convolution to one channel), so the head ends at the resolution the
logits have. Upsampling the coarse ResNet features, rather than
downsampling ERFNet's, keeps ``S_E``'s detail, which the paper's ablation
ranks among the three most important inputs.

ImageNet weights for the two encoders load from a user path
(torchvision's ``resnet18`` state dict, into a head of ``resnet_width``
64: :meth:`FailureHead.load_resnet18`; the first
convolution's RGB filters are kept for ``x`` and their mean initialises
the extra channels). None can be downloaded here, so the shipped head is
trained from scratch: a documented deviation from the paper.

:class:`FailureHeadSpec` also builds the ablations of the paper's Table IV:
any input dropped (``x``, ``w1`` .. ``w4``, ``se`` for ``S_E``), or one
branch taking every input.
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

import torch
from torch import nn
from torch.nn import functional as F

from ...models.erfnet import NonBottleneck1D
from ...models.erfnet import Upsampler

INPUTS = ('x', 'w1', 'w2', 'w3', 'w4', 'se')
BRANCH1 = ('x', 'w1')
BRANCH2 = ('w1', 'w2', 'w3', 'w4')
CHANNELS = {'x': 3, 'w1': 1, 'w2': 1, 'w3': 1, 'w4': 1}


@dataclasses.dataclass
class FailureHeadSpec:
    """What a failure head takes (stored in model manifests as a dict).

    ``inputs``: the subset of :data:`INPUTS` used (all by default);
    ``single_branch``: one ResNet-18 encoder on every image-sized input
    instead of the two of the paper; ``width``: channels of ``F_D``;
    ``resnet_width``: the first stage's channels of each ResNet-18 encoder
    (64 is torchvision's ``resnet18``; the default 16 keeps its layout at a
    quarter of the width, 0.7 M parameters instead of 11.2 M per encoder,
    so the shipped model stays a few megabytes and trains on a CPU).
    """

    inputs: tuple = INPUTS
    single_branch: bool = False
    width: int = 128
    resnet_width: int = 16

    def __post_init__(self):
        self.inputs = tuple(self.inputs)
        unknown = [i for i in self.inputs if i not in INPUTS]
        if unknown:
            raise ValueError(f'failure head: unknown inputs {unknown} (known: {INPUTS})')
        if not [i for i in self.inputs if i != 'se']:
            raise ValueError('failure head: needs at least one of x, w1 .. w4')

    def branches(self):
        """Return the image-sized inputs of each ResNet branch (empty branches left out)."""
        if self.single_branch:
            groups = [tuple(i for i in INPUTS if i in self.inputs and i != 'se')]
        else:
            groups = [tuple(i for i in BRANCH1 if i in self.inputs),
                      tuple(i for i in BRANCH2 if i in self.inputs)]
        return [g for g in groups if g]

    def as_dict(self):
        return {'inputs': list(self.inputs), 'single_branch': bool(self.single_branch),
                'width': int(self.width), 'resnet_width': int(self.resnet_width)}

    @classmethod
    def from_dict(cls, d):
        d = dict(d or {})
        return cls(tuple(d.get('inputs', INPUTS)), bool(d.get('single_branch', False)),
                   int(d.get('width', 128)), int(d.get('resnet_width', 16)))

    def ablation(self, name):
        """Return this spec changed as a Table IV row.

        ``name``: ``full``, ``single`` (one branch), ``-x``, ``-w1`` ..
        ``-w4``, ``-se`` (that input dropped), or ``direct`` (the baseline of
        a head on the logits alone: one branch on ``w1`` .. ``w4``, no image,
        no segmenter features; train it with the segmenter frozen).
        """
        if name == 'direct':
            return dataclasses.replace(self, inputs=BRANCH2, single_branch=True)
        if name == 'full':
            return dataclasses.replace(self)
        if name == 'single':
            return dataclasses.replace(self, single_branch=True)
        if name.startswith('-') and name[1:] in INPUTS:
            return dataclasses.replace(self, inputs=tuple(i for i in self.inputs
                                                          if i != name[1:]))
        raise ValueError(f'unknown ablation {name!r}: full, single, direct, or -x, -w1 .. -w4, '
                         '-se')


def logit_maps(logits, w1_conv, keep=None):
    """Return ``{'w1' .. 'w4'}``, each ``[N, 1, H, W]``, from logits ``[N, C, H, W]``.

    ``keep``: the channels of the normal classes (all when None); see the
    module docs for the four maps.
    """
    normal = logits if keep is None else logits[:, list(keep)]
    prob = normal.softmax(dim=1)
    w2, arg = prob.max(dim=1, keepdim=True)
    entropy = -(prob * prob.clamp_min(1e-12).log()).sum(dim=1, keepdim=True)
    k = normal.shape[1]
    w4 = arg.to(logits.dtype) / max(1, k - 1)
    return {'w1': w1_conv(logits), 'w2': w2, 'w3': torch.sigmoid(entropy), 'w4': w4}


class ResNet18Trunk(nn.Module):
    """ResNet-18's layout without its pooling head: ``[N, c, H, W]`` -> ``[N, 8 w, H/32, W/32]``.

    torchvision's blocks (``BasicBlock``) and parameter names, so with
    ``width`` 64 it is torchvision's ``resnet18`` trunk exactly and loads
    its state dicts; smaller ``width`` scales every stage's channels
    (``w, 2w, 4w, 8w``) and keeps the depth and strides.
    """

    def __init__(self, in_channels, width=64):
        super().__init__()
        from torchvision.models.resnet import BasicBlock
        w = int(width)
        self.out_channels = 8 * w
        self.conv1 = nn.Conv2d(in_channels, w, 7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(w)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        layers, cin = [], w
        for i, cout in enumerate((w, 2 * w, 4 * w, 8 * w)):
            stride = 1 if i == 0 else 2
            down = None
            if stride != 1 or cin != cout:
                down = nn.Sequential(nn.Conv2d(cin, cout, 1, stride=stride, bias=False),
                                     nn.BatchNorm2d(cout))
            layers.append(nn.Sequential(BasicBlock(cin, cout, stride, down),
                                        BasicBlock(cout, cout)))
            cin = cout
        self.layer1, self.layer2, self.layer3, self.layer4 = layers

    def forward(self, x):
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        return self.layer4(self.layer3(self.layer2(self.layer1(x))))


class FailureHead(nn.Module):
    """FSNet's ``F``: ``(x, logits, S_E(x))`` -> failure logits ``[N, 1, H, W]`` (module docs).

    Args:
        num_outputs: the segmenter's logit channels (void included).
        keep: the normal classes' channels (None: all).
        spec: a :class:`FailureHeadSpec` (or its dict).
        segmenter_channels: channels of ``S_E(x)`` (ERFNet's encoder: 128).

    """

    def __init__(self, num_outputs, keep=None, spec=None, segmenter_channels=128):
        super().__init__()
        spec = spec if isinstance(spec, FailureHeadSpec) else FailureHeadSpec.from_dict(spec)
        self.spec = spec
        self.keep = None if keep is None else [int(k) for k in keep]
        self.w1 = nn.Conv2d(int(num_outputs), 1, 1)
        self.groups = spec.branches()
        self.encoders = nn.ModuleList(
            ResNet18Trunk(sum(CHANNELS[i] for i in g), spec.resnet_width) for g in self.groups)
        fused = 8 * int(spec.resnet_width) * len(self.groups)
        if 'se' in spec.inputs:
            fused += segmenter_channels
        width = int(spec.width)
        self.fuse = nn.Sequential(nn.Conv2d(fused, width, 3, padding=1, bias=False),
                                  nn.BatchNorm2d(width, eps=1e-3), nn.ReLU())
        self.decoder = nn.Sequential(
            Upsampler(width, 64), NonBottleneck1D(64, 0, 1),
            Upsampler(64, 16), NonBottleneck1D(16, 0, 1),
            nn.ConvTranspose2d(16, 1, 2, stride=2))

    def forward(self, x, logits, features):
        """``x`` ``[N, 3, H, W]`` in [0, 1]; ``logits`` ``[N, C, H, W]``; ``features`` 1/8 grid."""
        maps = logit_maps(logits, self.w1, self.keep)
        maps['x'] = x
        grid = features.shape[-2:]
        parts = []
        for group, enc in zip(self.groups, self.encoders):
            out = enc(torch.cat([maps[i] for i in group], dim=1))
            parts.append(F.interpolate(out, size=grid, mode='bilinear', align_corners=False))
        if 'se' in self.spec.inputs:
            parts.append(features)
        return self.decoder(self.fuse(torch.cat(parts, dim=1)))

    def load_resnet18(self, state):
        """Initialise both encoders from torchvision ``resnet18`` weights (a state dict).

        The first convolution keeps the RGB filters for ``x`` and starts other
        channels at their mean; ``fc`` is ignored. Returns the number of
        tensors loaded per encoder.
        """
        if self.spec.resnet_width != 64:
            raise ValueError('resnet18 weights need resnet_width 64 (the layout of torchvision), '
                             f'this head has {self.spec.resnet_width}')
        state = {k: v for k, v in state.items() if not k.startswith('fc.')}
        loaded = 0
        for group, enc in zip(self.groups, self.encoders):
            own = enc.state_dict()
            conv = state['conv1.weight']
            parts = []
            for name in group:
                parts.append(conv if name == 'x' else conv.mean(dim=1, keepdim=True))
            new = dict(state)
            new['conv1.weight'] = torch.cat(parts, dim=1)
            bad = [k for k, v in new.items() if k not in own or own[k].shape != v.shape]
            if bad or set(own) - set(new):
                raise ValueError(f'not a torchvision resnet18 state dict (e.g. {bad[:1]} or '
                                 f'missing {sorted(set(own) - set(new))[:1]})')
            enc.load_state_dict(new)
            loaded = len(new)
        return loaded


def segment_with_failure(network, head, x):
    """Return ``(logits, failure logits)`` of ERFNet ``network`` and ``head`` on ``x``."""
    features = network.encoder(x)
    logits = network.decoder(features)
    return logits, head(x, logits, features)


class FSNet(nn.Module):
    """ERFNet and its failure head: ``x`` -> ``(logits, failure logits)``, at the input size."""

    def __init__(self, network, head):
        super().__init__()
        self.network = network
        self.head = head

    def forward(self, x):
        return segment_with_failure(self.network, self.head, x)


def balanced_bce(failure_logits, failures, valid=None):
    """Return FSNet's loss L2, as intended: ``-[beta y log p + (1 - y) log(1 - p)]``.

    It is averaged over the valid pixels;
    ``beta`` = negatives / positives over the valid pixels of the batch (1
    when either is absent), so the rarer class weighs as much as the other
    in total. The paper's printed formula misplaces a sign and a bracket
    (paper 004, section 4.1 of the methods notes); this is the form that is
    a loss.
    """
    y = failures.to(failure_logits.dtype)
    if valid is None:
        valid = torch.ones_like(y, dtype=torch.bool)
    valid = valid.to(torch.bool)
    pos = (y * valid).sum()
    neg = ((1 - y) * valid).sum()
    beta = torch.where((pos > 0) & (neg > 0), neg / pos.clamp_min(1), torch.ones_like(pos))
    # log p = logsigmoid(z), log(1 - p) = logsigmoid(-z): stable for large |z|.
    per_pixel = -(beta.detach() * y * F.logsigmoid(failure_logits) +
                  (1 - y) * F.logsigmoid(-failure_logits))
    return (per_pixel * valid).sum() / valid.sum().clamp_min(1)


def failure_targets(predicted, labels, anomaly, void=255):
    """``(failures, valid)`` per pixel: the prediction is wrong, and where that is known.

    ``predicted``: arg-max class ``[N, H, W]``; ``labels``: class ids with
    ``void`` unlabelled; ``anomaly``: bool, anomaly pixels (void in
    ``labels``). An anomaly pixel is a failure wherever the segmenter gives
    it a normal class, which is everywhere (the prediction is over normal
    classes); other void pixels (outside the image) are not valid.
    """
    labelled = labels != void
    failures = (labelled & (predicted != labels)) | anomaly
    return failures, labelled | anomaly


class PixelFailureModel(nn.Module):
    """The deployed pixel graph with a failure head: uint8 images -> anomaly, classes, failure.

    :class:`~anomaly_perception.branches.pixel.model.PixelSegmenterModel`'s two
    outputs plus the failure probability ``[N, H, W]`` float32 in [0, 1]
    (the sigmoid of the head), from one pass of the segmenter.
    """

    def __init__(self, segmenter, head):
        super().__init__()
        self.segmenter = segmenter
        self.head = head

    def half_precision(self):
        """Put ERFNet and the head in fp16 (in place); scores run on float32 logits."""
        self.segmenter.network.half()
        self.head.half()
        return self

    def forward(self, images):
        seg = self.segmenter
        dtype = next(seg.network.parameters()).dtype
        x = (images.permute(0, 3, 1, 2).to(torch.float32) / 255.0).to(dtype)
        logits, failure = segment_with_failure(seg.network, self.head, x)
        failure = torch.sigmoid(failure.to(torch.float32))[:, 0]
        return (*seg.outputs(logits.to(torch.float32)), failure)


def normal_channels(num_outputs, void_index):
    """Return the logit channels of the normal classes (all but a void class)."""
    return [c for c in range(int(num_outputs)) if c != void_index]


def _build_from_manifest(arch):
    from .model import _build_from_manifest as build_pixel
    segmenter = build_pixel(arch)
    head = FailureHead(arch['num_classes'],
                       normal_channels(arch['num_classes'], arch.get('void_index')),
                       arch.get('failure_head'))
    return PixelFailureModel(segmenter, head)


def _to_fp16(module):
    import copy
    return copy.deepcopy(module).half_precision()


def _architecture():
    from .model import MODEL_FILE
    from ...models.registry import Architecture
    from ...models.registry import Tensor
    return Architecture(
        name='erfnet_pixel_fsnet', build=_build_from_manifest, weights_file=MODEL_FILE,
        inputs=(Tensor('images', 'uint8', ('H', 'W', 3)),),
        outputs=(Tensor('anomaly', 'float32', ('H', 'W')), Tensor('classes', 'uint8', ('H', 'W')),
                 Tensor('failure', 'float32', ('H', 'W'))),
        to_fp16=_to_fp16)


ARCHITECTURE = _architecture()

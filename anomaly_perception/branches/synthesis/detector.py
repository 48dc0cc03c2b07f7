"""Guided editing of paper 001 (Anomalies-by-Synthesis), Algorithm 1.

A DDPM ``eps(x_t, t)`` of the normal world (epsilon prediction, images in
[-1, 1]) samples ``x_0`` from ``q(x_0) r_sim(x_0, x_input)`` with
``log r_sim(a, b) = -lambda * ||a - b||^2`` (the paper's Gaussian kernel;
the sum runs over every channel and pixel). Per step, from the timestep
``t`` of ``x_t`` to the previous one ``s`` (``t - 1``, or the next of a
respaced schedule):

1. ``x_bar = mu(x_t, t)``: DDPM's posterior mean, written with the
   *cumulative* alphas (the printed algorithm mixes per-step and cumulative
   ones; METHODS.md 1.4); ``x_0`` is clipped to [-1, 1] inside it, as the
   scheduler does;
2. the guidance ``g`` is evaluated at ``x_bar`` (not at ``x_t``), at the
   noise level ``s`` of ``x_bar``:

   * ``reverse`` (the paper's reverse timestep matching): ``g = grad_x
     log r_sim(mu0(x), x_input)`` at ``x = x_bar``, with ``mu0(x) = (x -
     sqrt(1 - abar_s) eps(x, s)) / sqrt(abar_s)`` unclipped, a forward and
     backward pass of the model;
   * ``mismatched`` (line 8b): ``g = grad log r_sim(x_bar, x_input)``: the
     noisy sample compared with the clean input;
   * ``forward`` (lines 7c/8c, forward matching): ``g = grad log
     r_sim(x_bar, sqrt(abar_s) x_input)``: with the input scaled to the
     noise level (its mean under the forward process);
   * ``none``: ``g = 0``, the scheduler's ancestral step;

3. ``x_s = x_bar + sigma^2 g + sigma z``, ``sigma^2`` the posterior variance
   (DDPM's ``beta_tilde``; 0 on the last step, where ``abar_s = 1`` and the
   three guidances coincide anyway).

``steps`` below the training schedule's ``T`` respaces the schedule
(DDPMScheduler's ``set_timesteps``: every ``T / steps``-th timestep, with the
posterior of the respaced chain): a speed option, fewer model passes per
image for a coarser chain.

:class:`AnomalySynthesizer` is the branch's one pipeline (``synthesize``,
``replay --pipelines synthesis`` and ``experiment synthesis`` call it): an
image -> the model's input (centre crop, resize) -> the guided edit -> the
distance between input and edit in a feature space
(:mod:`.analysis`) -> refined by segments -> maps at the input's
resolution.
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
import logging
import math

import numpy as np
import torch

from . import SHIPPED_MODEL
from .analysis import SynthesisError
from ..instance import SHIPPED_MODEL as PROMPTABLE_MODEL
from ..pixel import SHIPPED_MODEL as PIXEL_MODEL
from ...stream.pipeline import Detector

LOG = logging.getLogger(__name__)
GUIDANCES = ('reverse', 'forward', 'mismatched', 'none')
SATURATED = 0.5     # share of an edit's values at 0 or 255 that says the sampler diverged


@dataclasses.dataclass
class GuidanceConfig:
    """How an input is edited towards the normal world.

    Attributes:
        guidance: one of :data:`GUIDANCES`.
        strength: ``lambda`` of ``log r_sim = -lambda ||a - b||^2`` (sum over
            channels and pixels, images in [-1, 1]).
        steps: reverse steps; 0 = the model's training schedule (``T``),
            fewer = a respaced schedule.
        seed: the sampler's noise.

    """

    guidance: str = 'reverse'
    strength: float = 10.0
    steps: int = 0
    seed: int = 0

    def __post_init__(self):
        if self.guidance not in GUIDANCES:
            raise SynthesisError(f'guidance {self.guidance!r}: one of {", ".join(GUIDANCES)}.')
        if not (math.isfinite(self.strength) and self.strength >= 0):
            raise SynthesisError(f'guidance strength {self.strength}: a number >= 0.')
        if self.steps < 0:
            raise SynthesisError(f'steps {self.steps}: >= 0 (0: the training schedule).')


def schedule_timesteps(scheduler, steps):
    """Set ``scheduler``'s reverse timesteps (``steps`` 0: all ``T``); return them, descending."""
    total = int(scheduler.config.num_train_timesteps)
    steps = total if steps in (0, None) else int(steps)
    if steps > total:
        raise SynthesisError(f'{steps} steps: the model was trained with {total} timesteps.')
    scheduler.set_timesteps(steps)
    return [int(t) for t in scheduler.timesteps]


def _abar(scheduler, t, like):
    if t < 0:
        return torch.ones((), dtype=like.dtype, device=like.device)
    return scheduler.alphas_cumprod[t].to(dtype=like.dtype, device=like.device)


def posterior_mean_variance(scheduler, eps, t, x):
    """Return DDPM's ``(mean, variance)`` of ``x_s`` given ``x_t`` and ``eps``, as the scheduler.

    ``s = scheduler.previous_timestep(t)``; ``x_0`` is clipped when the
    scheduler clips (``clip_sample``). The variance is the scheduler's
    ``fixed_small`` one (``beta_tilde``), 0 at ``t = 0``.
    """
    s = int(scheduler.previous_timestep(t))
    a_t, a_s = _abar(scheduler, t, x), _abar(scheduler, s, x)
    x0 = (x - (1 - a_t).sqrt() * eps) / a_t.sqrt()
    if scheduler.config.clip_sample:
        limit = scheduler.config.clip_sample_range
        x0 = x0.clamp(-limit, limit)
    alpha = a_t / a_s
    beta = 1 - alpha
    mean = (a_s.sqrt() * beta / (1 - a_t)) * x0 + (alpha.sqrt() * (1 - a_s) / (1 - a_t)) * x
    variance = ((1 - a_s) / (1 - a_t) * beta).clamp_min(1e-20) if t > 0 else torch.zeros_like(a_t)
    return mean, variance


def predicted_x0(eps_model, x, s, scheduler):
    """Return ``mu0(x) = (x - sqrt(1 - abar_s) eps(x, s)) / sqrt(abar_s)`` unclipped (s < 0: x)."""
    if s < 0:
        return x
    a_s = _abar(scheduler, s, x)
    return (x - (1 - a_s).sqrt() * eps_model(x, s)) / a_s.sqrt()


def guidance_gradient(eps_model, scheduler, x_bar, s, target, guidance, strength):
    """Return ``g = grad log r_sim(...)`` at ``x_bar`` (noise level ``s``) for ``guidance``."""
    if guidance == 'none' or strength == 0:
        return torch.zeros_like(x_bar)
    if guidance == 'mismatched':
        return -2.0 * strength * (x_bar - target)
    if guidance == 'forward':
        return -2.0 * strength * (x_bar - _abar(scheduler, s, x_bar).sqrt() * target)
    if guidance != 'reverse':
        raise SynthesisError(f'guidance {guidance!r}: one of {", ".join(GUIDANCES)}.')
    with torch.enable_grad():
        x = x_bar.detach().requires_grad_(True)
        log_r = -strength * (predicted_x0(eps_model, x, s, scheduler) - target).pow(2).sum()
        (grad,) = torch.autograd.grad(log_r, x)
    return grad.detach()


def guided_step(eps_model, scheduler, x, t, target, guidance, strength, noise):
    """Return ``x_s`` from ``x_t`` (one step of Algorithm 1; module docs); ``noise`` is ``z``."""
    with torch.no_grad():
        eps = eps_model(x, t)
        mean, variance = posterior_mean_variance(scheduler, eps, t, x)
    s = int(scheduler.previous_timestep(t))
    if t > 0:
        g = guidance_gradient(eps_model, scheduler, mean, s, target, guidance, strength)
        return mean + variance * g + variance.sqrt() * noise
    return mean


def guided_edit(eps_model, scheduler, image, config, *, progress=None):
    """Edit ``image`` (``[N, C, H, W]`` in [-1, 1]) towards the model's normal world.

    Starts from ``x_T ~ N(0, I)`` (seeded by ``config.seed``) and runs
    Algorithm 1 down the (possibly respaced) schedule; returns ``x_0``.
    ``progress(i, n)`` is called after each step when given.
    """
    timesteps = schedule_timesteps(scheduler, config.steps)
    gen = torch.Generator(device='cpu').manual_seed(int(config.seed))
    target = image.detach()
    x = torch.randn(target.shape, generator=gen).to(target)
    for i, t in enumerate(timesteps):
        noise = torch.randn(target.shape, generator=gen).to(target)
        x = guided_step(eps_model, scheduler, x, t, target, config.guidance, config.strength,
                        noise)
        if progress is not None:
            progress(i + 1, len(timesteps))
    return x


FEATURE_SPACES = ('erfnet', 'rgb', 'ssim')
REFINEMENTS = ('slic', 'promptable', 'none')


@dataclasses.dataclass
class SynthesisOptions:
    """How :class:`AnomalySynthesizer` edits and analyses (``None``/``''``: the defaults).

    Attributes:
        guidance, strength, steps: Algorithm 1's (:class:`GuidanceConfig`);
            None takes the model manifest's ``guidance``.
        features: ``erfnet`` (default), ``rgb``, ``ssim``, or the path of a
            user's feature extractor (``.pt2`` torch.export, or TorchScript).
        pixel_model: the ERFNet pixel model of ``erfnet`` ('' = shipped).
        refine: ``slic`` (superpixels, default), ``promptable`` (the
            instance branch's promptable segmenter on a grid) or ``none``.
        segments: SLIC's number of superpixels.
        promptable: the promptable model of ``promptable`` ('' = shipped).
        grid: points per side of the promptable grid.
        analysis_shape: ``(h, w)`` the distance is computed at (None: the
            pixel model's input, 144x256 as shipped).
        seed: the sampler's noise.

    """

    guidance: str = None
    strength: float = None
    steps: int = None
    features: str = 'erfnet'
    pixel_model: str = ''
    refine: str = 'slic'
    segments: int = 200
    promptable: str = ''
    grid: int = 16
    analysis_shape: tuple = None
    seed: int = 0

    def __post_init__(self):
        if self.refine not in REFINEMENTS:
            raise SynthesisError(f'refine {self.refine!r}: one of {", ".join(REFINEMENTS)}.')


@dataclasses.dataclass
class SynthesisResult:
    """One image's edit and analysis (maps at the input's resolution, NaN outside the crop)."""

    edit: object            # uint8 [h, w, 3] RGB at the model's resolution
    distance: object        # float32 [H, W]: input vs edit in the feature space
    anomaly: object         # float32 [H, W]: the distance refined by segments (or the distance)
    seconds: float          # wall time of the edit and the analysis


class DiffusionBackend:
    """What the synthesis branch runs on: PyTorch, always (``describe`` for reports).

    The guidance differentiates through the UNet, which an ONNX or TensorRT
    graph cannot do; the branch runs offline, off-board.
    """

    name = 'torch'
    precision = 'fp32'

    def __init__(self, device, guidance):
        self.device = str(device)
        self.guidance = guidance

    def describe(self):
        g = self.guidance
        return {'backend': self.name, 'device': self.device, 'precision': self.precision,
                'torch': torch.__version__,
                'sampler': f'{g.guidance} guidance, strength {g.strength:g}, '
                           f'{g.steps or "all"} steps'}


class AnomalySynthesizer(Detector):
    """Anomalies by synthesis for uint8 RGB images of any size (module docs).

    The image is centre-cropped to the model's aspect and resized to its
    input (as every branch does); the edit is compared with that resized
    input, both brought to ``analysis_shape``; the maps are resized back
    to the crop and are NaN outside it.
    """

    BACKENDS = ('torch', 'auto')
    model_dir = None

    def __init__(self, model, scheduler, manifest, options=None, *, device='cpu'):
        self.model = model.to(device).eval()
        for p in self.model.parameters():       # guidance differentiates w.r.t. images only
            p.requires_grad_(False)
        self.scheduler = scheduler
        self.manifest = manifest
        self.device = device
        self.options = options or SynthesisOptions()
        o = self.options
        from .ddpm import DEFAULT_GUIDANCE
        base = {**DEFAULT_GUIDANCE, **(manifest.get('guidance') or {})}
        self.guidance = GuidanceConfig(
            guidance=o.guidance or base['guidance'],
            strength=float(o.strength if o.strength is not None else base['strength']),
            steps=int(o.steps if o.steps is not None else base['steps']), seed=o.seed)
        schedule_timesteps(scheduler, self.guidance.steps)      # checks steps now
        self.backend = DiffusionBackend(device, self.guidance)
        self.input_shape = tuple(manifest['preprocessing']['input_shape'])
        self._extractors = {}
        self._segmenter = None
        self.analysis_shape = tuple(o.analysis_shape) if o.analysis_shape else (144, 256)
        if not o.analysis_shape and (o.features == 'erfnet' or not o.pixel_model):
            from ...runtime.manifest import load_manifest
            self.analysis_shape = tuple(
                load_manifest(self._pixel_model(), verify=False)['preprocessing']['input_shape'])
        self.extractor(o.features)                      # load (and check) it now
        if o.refine == 'promptable':
            self.promptable_segmenter()

    def _pixel_model(self):
        from ...runtime.manifest import shipped_model_dir
        return self.options.pixel_model or shipped_model_dir(PIXEL_MODEL)

    def extractor(self, features):
        """Return the feature extractor of ``features`` (None for rgb and ssim), loaded once."""
        if features in ('rgb', 'ssim'):
            return None
        if features not in self._extractors:
            from . import analysis as an
            self._extractors[features] = (an.erfnet_features(self._pixel_model())
                                          if features == 'erfnet'
                                          else an.load_feature_extractor(features))
        return self._extractors[features]

    def promptable_segmenter(self):
        """Return the promptable segmenter of ``refine='promptable'``, loaded once."""
        if self._segmenter is None:
            from ..instance.promptable import load_promptable
            from ...runtime.manifest import shipped_model_dir
            self._segmenter, _ = load_promptable(self.options.promptable
                                                 or shipped_model_dir(PROMPTABLE_MODEL))
        return self._segmenter

    @classmethod
    def from_model_dir(cls, model_dir=None, backend='torch', options=None, *, device='cpu'):
        """Load a synthesis model directory (None: the shipped ``models/synthesis_ddpm``).

        Raises:
            ModelError: not a model directory, another branch's (named), or
                corrupt files (named).
            BackendError: a backend other than PyTorch (see :class:`DiffusionBackend`).

        """
        from .ddpm import build_scheduler
        from ...runtime.backends import BackendError
        from ...runtime.manifest import shipped_model_dir
        from ...runtime.network import load_network
        if backend not in cls.BACKENDS:
            raise BackendError(f'the synthesis branch runs on PyTorch only (its guidance '
                               f'differentiates through the DDPM); backend {backend!r} cannot '
                               'run it.')
        model_dir = model_dir or shipped_model_dir(SHIPPED_MODEL)
        model, manifest = load_network(model_dir, branch='synthesis')
        synth = cls(model, build_scheduler(manifest['architecture']), manifest, options,
                    device=device)
        synth.model_dir = str(model_dir)
        return synth

    def edit(self, images, progress=None, guidance=None):
        """Edit uint8 ``[N, h, w, 3]`` images at the model's input; return uint8 edits.

        ``guidance`` overrides the configured guidance's kind (experiments).
        """
        from .ddpm import to_model_range
        from .ddpm import to_uint8
        config = self.guidance if guidance is None else dataclasses.replace(
            self.guidance, guidance=guidance)
        x = to_model_range(images).to(self.device)
        return to_uint8(guided_edit(self.model, self.scheduler, x, config, progress=progress))

    def distance(self, small, edited, features=None):
        """Return ``(distance float32 [h, w], input uint8 [h, w, 3])`` at ``analysis_shape``."""
        from . import analysis as an
        features = features or self.options.features
        h, w = self.analysis_shape
        pair = np.stack([small, edited])
        x = torch.from_numpy(pair).permute(0, 3, 1, 2).float() / 255.0
        x = torch.nn.functional.interpolate(x, size=(h, w), mode='bilinear',
                                            align_corners=False).clamp(0, 1)
        a, b = x[:1], x[1:]
        if features == 'rgb':
            d = an.rgb_distance(a, b)
        elif features == 'ssim':
            d = an.ssim_distance(a, b)
        else:
            d = an.feature_distance(self.extractor(features), a, b)
        analysed = (a[0].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
        return d[0].numpy().astype(np.float32), analysed

    def segments(self, rgb, refine=None):
        """Return segments ``int32 [h, w]`` of an analysis-resolution image (None: no refining)."""
        from . import analysis as an
        refine = refine or self.options.refine
        if refine == 'slic':
            return an.slic_superpixels(rgb, self.options.segments)
        if refine == 'promptable':
            return an.promptable_segments(self.promptable_segmenter(), rgb, self.options.grid)
        return None

    def to_input(self, analysis_map, size):
        """Resize an analysis-resolution map to the crop of an image of ``size``; NaN outside."""
        import cv2

        from ...runtime.preprocess import crop_box
        height, width = size
        y0, x0, ch, cw = crop_box(height, width, self.input_shape[1] / self.input_shape[0])
        full = np.full((height, width), np.nan, np.float32)
        full[y0:y0 + ch, x0:x0 + cw] = cv2.resize(analysis_map, (cw, ch),
                                                  interpolation=cv2.INTER_LINEAR)
        return full

    def preprocess(self, images, channel_order='rgb'):
        """Images as :meth:`score` takes them -> uint8 ``[N, h, w, 3]`` RGB at the model input."""
        from ...runtime.preprocess import as_batch
        from ...runtime.preprocess import fit_resize
        return np.stack([fit_resize(i, self.input_shape)
                         for i in as_batch(images, channel_order)])

    def score(self, images, channel_order='rgb'):
        """Edit and analyse one image, a batch or a list: a :class:`SynthesisResult` each."""
        from ...runtime.preprocess import as_batch
        return [self.process(i) for i in as_batch(images, channel_order)]

    def _check_saturation(self, edited):
        """Warn (once) when an edit is mostly 0 or 255: the guidance made the sampler diverge."""
        share = float(np.mean((edited == 0) | (edited == 255)))
        if share > SATURATED and not getattr(self, '_warned', False):
            self._warned = True
            g = self.guidance
            LOG.warning('The edit saturated (%.0f %% of its values at 0 or 255): guidance '
                        'strength %g is too strong for %s steps of this model; choose it with '
                        'anomaly-perception experiment synthesis-strength.', 100 * share,
                        g.strength, g.steps or 'all')
        return share

    def process(self, image, progress=None):
        """Edit and analyse one uint8 RGB image ``[H, W, 3]``: a :class:`SynthesisResult`."""
        import time

        from .analysis import refine_by_segments
        from ...runtime.preprocess import check_rgb_image
        from ...runtime.preprocess import fit_resize
        check_rgb_image(image)
        started = time.perf_counter()
        small = fit_resize(image, self.input_shape)
        edited = self.edit(small[None], progress)[0]
        self._check_saturation(edited)
        distance, analysed = self.distance(small, edited)
        segments = self.segments(analysed)
        refined = distance if segments is None else refine_by_segments(distance, segments)
        size = image.shape[:2]
        return SynthesisResult(edited, self.to_input(distance, size),
                               self.to_input(refined, size), time.perf_counter() - started)

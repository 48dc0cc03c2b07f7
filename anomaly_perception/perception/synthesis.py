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
"""

import dataclasses
import math

import torch

from ..errors import AnomalyPerceptionError

GUIDANCES = ('reverse', 'forward', 'mismatched', 'none')


class SynthesisError(AnomalyPerceptionError):
    """Guided editing cannot run with these options or this model."""


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

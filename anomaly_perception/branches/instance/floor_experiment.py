"""How well instances are placed on the floor, against the synthetic world's geometry.

Runs in the pinhole scenes (corridor, tunnel: the factory camera is a
fisheye, which :mod:`~anomaly_perception.branches.instance.floor` does not model),
one local anomaly type per run, frames at times when an anomaly is 1-5 m
ahead. Each instance mask (the world's own, or a model's) is placed with
the camera's calibrated mounting (the scene's height and pitch, without the
trajectory's vibration, which the robot does not know) and compared with
the renderer's floor contact (:attr:`~anomaly_perception.data.synthetic.world.Frame.contacts`).
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

import numpy as np

from .floor import FloorCamera
from .floor import place_instances
from ...data.synthetic.catalog import types_for
from ...data.synthetic.world import Sequence
from ...data.synthetic.world import SequenceSpec

PINHOLE_ENVIRONMENTS = ('corridor', 'tunnel')


@dataclasses.dataclass(frozen=True)
class FloorError:
    """One placed instance: truth and estimate (metres, level floor, camera's foot point)."""

    environment: str
    anomaly: str
    true_forward: float
    true_lateral: float
    est_forward: float
    est_lateral: float

    @property
    def true_distance(self):
        return float(np.hypot(self.true_forward, self.true_lateral))

    @property
    def est_distance(self):
        return float(np.hypot(self.est_forward, self.est_lateral))

    @property
    def error(self):
        """Return estimated minus true distance from the camera's foot point (m)."""
        return self.est_distance - self.true_distance

    @property
    def relative_error(self):
        """``|error| / true distance``."""
        return abs(self.error) / self.true_distance

    @property
    def point_error(self):
        """Distance between estimated and true contact points (m).

        Larger than the distance error where a hazard's near edge runs across
        the view: any point of that edge is as near as the others.
        """
        return float(np.hypot(self.est_forward - self.true_forward,
                              self.est_lateral - self.true_lateral))


def floor_camera(frame, intr):
    """Return the :class:`FloorCamera` a robot would have for this frame (K as in camera_info)."""
    height, pitch = frame.camera
    f = intr.focal
    return FloorCamera(fx=f, fy=f, cx=intr.width / 2 - 0.5, cy=intr.height / 2 - 0.5,
                       height=height, pitch=pitch)


def measure_floor_errors(n_runs=24, frames_per_run=4, seed=0, width=640, height=360,
                         near=1.0, far=5.0, instance_source=None, progress=None):
    """Place instances of rendered frames and return a list of :class:`FloorError`.

    Args:
        n_runs: sequences (round-robin over environments and their local types).
        frames_per_run: frames per sequence, at times when a site is ``near``-``far`` m ahead.
        instance_source: ``(frame) -> uint16 id map`` (default: the world's own
            instance masks, which measures the geometry alone); estimates are
            matched to the truth by id, so a model's ids must be the world's
            (e.g. its masks intersected with them).
        progress: optional callable ``(done, total)``.

    Only instances whose true contact lies ``near``-``far`` m ahead count.
    """
    rng = np.random.default_rng(seed)
    combos = [(env, t.name) for env in PINHOLE_ENVIRONMENTS for t in types_for(env)
              if not t.is_global]
    out = []
    for run in range(n_runs):
        env, kind = combos[run % len(combos)]
        spec = SequenceSpec(seed=int(seed * 1000 + run), environment=env,
                            scene_seed=int(rng.integers(0, 1000)), anomaly=kind,
                            duration_s=30.0)
        seq = Sequence(spec)
        intr = seq.intrinsics(width, height)
        ahead = rng.uniform(near, far, frames_per_run)
        for dist in ahead:
            _, z, _ = seq.sites[int(rng.integers(len(seq.sites)))]
            t = float(np.clip((z - dist - seq.start_z) / seq.speed, 0, seq.spec.duration_s))
            frame = seq.frame(t, width, height)
            ids = frame.instances if instance_source is None else instance_source(frame)
            placed, _ = place_instances(ids, floor_camera(frame, intr))
            for hazard in placed:
                truth = frame.contacts.get(hazard.instance)
                if truth is None or not near <= float(np.hypot(*truth)) <= far:
                    continue
                out.append(FloorError(env, kind, truth[0], truth[1], hazard.forward,
                                      hazard.lateral))
        if progress is not None:
            progress(run + 1, n_runs)
    return out


def summarise(errors):
    """Median distance errors, overall and per environment, type and distance band."""
    def stats(rows):
        rel = np.array([r.relative_error for r in rows])
        err = np.array([r.error for r in rows])
        return {'n': len(rows), 'median_relative_error': float(np.median(rel)),
                'p90_relative_error': float(np.quantile(rel, 0.9)),
                'median_abs_error_m': float(np.median(np.abs(err))),
                'median_signed_error_m': float(np.median(err)),
                'median_point_error_m': float(np.median([r.point_error for r in rows]))}
    if not errors:
        return {'n': 0}
    out = stats(errors)
    out['per_environment'] = {env: stats([r for r in errors if r.environment == env])
                              for env in sorted({r.environment for r in errors})}
    out['per_type'] = {kind: stats([r for r in errors if r.anomaly == kind])
                       for kind in sorted({r.anomaly for r in errors})}
    bands = [(1, 2), (2, 3), (3, 4), (4, 5)]
    out['per_distance'] = {f'{a}-{b} m': stats(sel) for a, b in bands
                           if (sel := [r for r in errors if a <= r.true_distance < b])}
    return out


def floor_plot(path, errors, tolerance=0.15):
    """Scatter of estimated vs true distance, with the ``tolerance`` band."""
    from ...metrics.plots import _figure
    from ...metrics.plots import _save
    plt, fig, ax = _figure(5.0, 4.5)
    top = 2.0 * max([r.true_distance for r in errors] + [1.0])
    for env, marker in zip(PINHOLE_ENVIRONMENTS, ('o', 's')):
        rows = [r for r in errors if r.environment == env]
        if rows:
            # Estimates beyond the plot are drawn on its top edge.
            ax.scatter([r.true_distance for r in rows],
                       [min(r.est_distance, top) for r in rows], s=12, marker=marker,
                       alpha=0.7, label=f'{env} ({len(rows)})')
    xs = np.array([0.0, top])
    ax.plot(xs, xs, 'k-', lw=0.8, label='exact')
    ax.fill_between(xs, xs * (1 - tolerance), xs * (1 + tolerance), color='0.85',
                    label=f'+-{tolerance:.0%}', zorder=0)
    ax.set_xlim(0, top / 2 * 1.05)
    ax.set_ylim(0, top)
    ax.set_xlabel('true distance to the floor contact (m)')
    ax.set_ylabel('estimated distance (m)')
    ax.set_title('Hazards on the floor')
    ax.legend(loc='upper left', fontsize=8)
    return _save(plt, fig, path)


def write_floor_report(out_dir, errors, settings):
    """Write ``floor.json`` (summary + every row), ``floor.png``; return the summary."""
    from pathlib import Path

    from ...io.files import atomic_write_json
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    summary = {'settings': settings, **summarise(errors)}
    rows = [{**dataclasses.asdict(r), 'true_distance': r.true_distance,
             'est_distance': r.est_distance} for r in errors]
    atomic_write_json(out / 'floor.json', {**summary, 'rows': rows}, indent=1)
    if errors:
        floor_plot(out / 'floor.png', errors)
    return summary

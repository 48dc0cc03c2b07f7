"""Sequences and frames of the synthetic world.

A *sequence* is one run of the robot through one scene, with at most one
anomaly type in it (as in the Robomaster dataset). :class:`Sequence` plans
the scene, the trajectory, the anomalies and the camera look from a seed;
:meth:`Sequence.frame` renders the frame at time ``t`` with all its labels.
Everything is a pure function of the seeds, so frames can be rendered in
any order, by any number of workers, with identical bytes.
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
import functools
import itertools

import cv2
import numpy as np

from . import anomalies
from . import effects
from .camera import Intrinsics
from .camera import Trajectory
from .catalog import anomaly_type
from .catalog import SEMANTIC_IDS
from .catalog import types_for
from .render import camera_effects
from .render import CameraLook
from .render import render
from .scene import build_scene

#: An anomaly counts as visible once it covers this fraction of the image (0.2%: about
#: 8 pixels of the 64x64 frame the frame branch sees).
MIN_VISIBLE_FRACTION = 0.002


def _rng(*keys):
    return np.random.default_rng(np.random.SeedSequence([int(k) for k in keys]))


@dataclasses.dataclass(frozen=True)
class Event:
    """One anomaly in a run.

    Local anomalies are placed at ``z`` (m along the way) and ``x`` (m
    across, None = random); global ones are active from ``start_s`` for
    ``duration_s``.
    """

    type_name: str
    z: float = 0.0
    x: float = None
    start_s: float = 0.0
    duration_s: float = 0.0


@dataclasses.dataclass(frozen=True)
class SequenceSpec:
    """What to generate: one robot run.

    Attributes:
        seed: the sequence's own seed (trajectory, anomalies, look).
        environment: ``'corridor'``, ``'factory'`` or ``'tunnel'``.
        scene_seed: which scene (several sequences may share a place).
        anomaly: anomaly type name for a single-type run (as in the
            Robomaster dataset), or None.
        duration_s: length of the run.
        events: explicit anomaly events (a patrol with several types);
            when given, ``anomaly`` is ignored.
        speed: forward speed in m/s (None = drawn from the seed).

    """

    seed: int
    environment: str
    scene_seed: int
    anomaly: str = None
    duration_s: float = 20.0
    events: tuple = ()
    speed: float = None


@dataclasses.dataclass
class Frame:
    """One rendered frame and its labels.

    Attributes:
        image: uint8 ``[H, W, 3]`` RGB.
        semantic: uint8 ``[H, W]`` class ids, 255 = void (anomaly pixels).
        mask: uint8 ``[H, W]``: 1 = anomaly pixel, 0 = not.
        instances: uint16 ``[H, W]`` anomaly instance ids, 0 = none.
        label: 0 (normal) or the anomaly type id.
        label_name: ``'normal'`` or the anomaly type name.
        is_global: the anomaly affects the whole frame (no mask).
        visible_px: anomaly pixels in view, before the visibility threshold.
        contacts: where each instance meets the floor, from the renderer's
            geometry: ``{id: (forward, lateral)}`` in metres on the level
            floor from the camera's foot point (ahead along its heading, to
            its right), the visible floor-touching point of the instance
            nearest to the camera; instances that touch the floor nowhere in
            view (a hanging cable, a door) are absent.
        camera: the camera's mounting ``(height m, pitch rad, positive =
            looking down)`` as the robot would calibrate it (the scene's
            setup, without the trajectory's vibration).

    """

    image: np.ndarray
    semantic: np.ndarray
    mask: np.ndarray
    instances: np.ndarray
    label: int
    label_name: str
    is_global: bool
    visible_px: int
    contacts: dict = dataclasses.field(default_factory=dict)
    camera: tuple = None

    @property
    def ambiguous(self):
        """Tell whether anomaly pixels are in view, but fewer than the visibility threshold."""
        return self.label == 0 and self.visible_px > 0


def _body_geometry(width, height):
    # Sized by the image height, so a wide frame's centre square shows the
    # gimbal exactly as a square frame does (the field of view works the same way).
    side = min(width, height)
    return (width * 0.5, height - side * (1 - 1.03)), (side * 0.06, side * 0.085)


@functools.lru_cache(maxsize=8)
def robot_body_mask(width, height):
    """Where the robot's own gimbal/blaster shows at the bottom of the frame (bool [H, W])."""
    mask = np.zeros((height, width), np.uint8)
    (cx, cy), (ax, ay) = _body_geometry(width, height)
    centre = (int(cx), int(cy))
    axes = (int(ax), int(ay))
    cv2.ellipse(mask, centre, axes, 0, 180, 360, 1, -1)
    mask.flags.writeable = False
    return mask.astype(bool)


@functools.lru_cache(maxsize=16)
def _body_colours(width, height, tint):
    body = robot_body_mask(width, height)
    yy, xx = np.nonzero(body)
    (cx, cy), (ax, ay) = _body_geometry(width, height)
    r = np.sqrt(((xx - cx) / ax) ** 2 + ((yy - cy) / ay) ** 2)
    shade = np.clip(1.15 - 0.5 * r + 0.25 * (xx - cx) / ax, 0.45, 1.2)
    col = np.asarray(tint, np.float32)[None] * shade[:, None] * 235
    col[r < 0.45] = (35, 32, 30)
    col = np.clip(col, 0, 255).astype(np.uint8)
    col.flags.writeable = False
    return col


def _draw_body(image, width, height, tint):
    image[robot_body_mask(width, height)] = _body_colours(width, height, tuple(tint))


class Sequence:
    """A planned robot run: scene, trajectory, anomalies and camera look."""

    def __init__(self, spec):
        self.spec = spec
        base = build_scene(spec.environment, spec.scene_seed)
        rng = _rng(spec.seed, 11)
        cam = base.camera
        width = base.width
        self.start_z = float(rng.uniform(1.0, 10.0))
        speed = float(rng.uniform(0.25, 0.55))
        self.speed = float(spec.speed) if spec.speed is not None else speed
        lateral = float(rng.uniform(-0.25, 0.25) * width)
        self.trajectory = Trajectory(
            rng, start_z=self.start_z, speed=self.speed, lateral=lateral,
            camera_height=cam.height, pitch=cam.pitch, lateral_range=0.06 * width,
            yaw_amplitude=0.05, shake=float(rng.uniform(0.5, 1.5)))
        # One robot, one camera: auto-exposure and white balance drift from run
        # to run, the lens (vignetting) and the response curve barely do.
        self.look = {
            'exposure': float(rng.uniform(0.85, 1.15)),
            'white_balance': tuple(float(v) for v in rng.uniform(0.97, 1.03, 3)),
            'gamma': float(rng.uniform(0.95, 1.05)),
            'noise': float(rng.uniform(0.008, 0.018)),
            'jpeg_quality': int(rng.integers(80, 96)),
            'vignette': float(rng.uniform(0.2, 0.28)),
        }
        events = list(spec.events) or self._single_type_events(spec, rng)
        for event in events:
            kind = anomaly_type(event.type_name)
            if kind not in types_for(spec.environment):
                raise ValueError(f'anomaly {event.type_name!r} does not occur in '
                                 f'{spec.environment!r}')
        end_z = self.start_z + self.speed * spec.duration_s
        length = max(base.length, end_z + 30.0)
        self.scene = dataclasses.replace(base, length=length) if length != base.length else base
        self.sites = []          # (type, z, instance ids) of local anomalies
        self.globals = []        # (type, start_s, end_s, params) of global anomalies
        self.instance_type = {}  # instance id -> AnomalyType
        ids = itertools.count(1)
        decals, sprites, boxes = [], [], []
        for k, event in enumerate(events):
            kind = anomaly_type(event.type_name)
            if kind.is_global:
                params = effects.global_effect(kind.name, _rng(spec.seed, 29, k))
                self.globals.append((kind, event.start_s, event.start_s + event.duration_s,
                                     params))
                continue
            # Mostly near the robot's path, as hazards worth reporting are.
            x = event.x if event.x is not None else float(np.clip(
                lateral + _rng(spec.seed, 37, k).uniform(-0.6, 0.6),
                -0.4 * base.width, 0.4 * base.width))
            placement = anomalies.place(kind.name, _rng(spec.seed, 23, k), base,
                                        float(event.z), x, ids)
            decals += placement.decals
            sprites += placement.sprites
            boxes += placement.boxes
            self.sites.append((kind, float(event.z), placement.instances))
            for ident in placement.instances:
                self.instance_type[ident] = kind
        if decals or sprites or boxes:
            self.scene = self.scene.with_objects(decals, sprites, boxes)

    def _single_type_events(self, spec, rng):
        if spec.anomaly is None:
            return []
        kind = anomaly_type(spec.anomaly)
        if kind.is_global:
            return [Event(kind.name, start_s=0.0, duration_s=spec.duration_s + 1.0)]
        end_z = self.start_z + self.speed * spec.duration_s
        n_sites = int(rng.integers(1, 4))
        sites = np.sort(rng.uniform(self.start_z + 2.0, end_z + 0.3, n_sites))
        return [Event(kind.name, z=float(z)) for z in sites]

    def candidate_times(self, rng, count, near=False):
        """Choose times at which to render frames: near the anomalies for local runs.

        Normally 0.4-3.2 m ahead (the robot approaching a hazard); ``near``
        picks times when an anomaly is 0.4-1.2 m ahead (small
        anomalies in small images only show up close).
        """
        duration = self.spec.duration_s
        if not self.sites:
            return np.sort(rng.uniform(0, duration, count))
        times = []
        for _ in range(count):
            _, z, _ = self.sites[rng.integers(len(self.sites))]
            ahead = rng.uniform(0.4, 1.2) if near else rng.uniform(0.4, 3.2)
            times.append(np.clip((z - ahead - self.start_z) / self.speed, 0, duration))
        return np.asarray(times)

    def active_global(self, t):
        """Return the global anomaly active at time ``t`` (type, params), or None."""
        for kind, start, end, params in self.globals:
            if start <= t < end:
                return kind, params
        return None

    def intrinsics(self, width, height):
        cam = self.scene.camera
        hfov = cam.hfov_deg
        if not cam.fisheye and width != height:
            # Wide frames keep the vertical field of view of the square crop.
            vfov = np.radians(hfov)
            hfov = float(np.degrees(2 * np.arctan(np.tan(vfov / 2) * width / height)))
        return Intrinsics(width, height, hfov, cam.fisheye)

    def frame(self, t, width=512, height=512):
        """Render the frame at time ``t`` (s) with its labels (see :class:`Frame`)."""
        rng = _rng(self.spec.seed, 31, int(round(t * 1000)))
        pose = self.trajectory.pose(t)
        active = self.active_global(t)
        gkind, effect = active if active else (None, {})
        gname = gkind.name if gkind else None
        if effect.get('kind') == 'misaligned':
            pose = dataclasses.replace(pose, roll=pose.roll + effect['roll'],
                                       pitch=pose.pitch + effect['pitch'])
        scene = self.scene
        if gname == 'darkness':
            lighting = dataclasses.replace(scene.lighting,
                                           level=scene.lighting.level * effect['level'],
                                           lamp_radiance=scene.lighting.lamp_radiance * 0.04,
                                           headlamp=scene.lighting.headlamp * effect['level'],
                                           ambient=scene.lighting.ambient * 0.3)
            scene = dataclasses.replace(scene, lighting=lighting)
        intr = self.intrinsics(width, height)
        out = render(scene, pose, intr)
        radiance = out.radiance
        if gname == 'mist':
            # Fog is lit by the ceiling lights, or only by the lamp in a tunnel.
            lit = 0.25 if scene.shape == 'tunnel' else 1.0
            radiance = effects.apply_haze(radiance, out.depth, effect['density'],
                                          effect['brightness'] * lit, effect['seed'])
        elif gname == 'dust':
            lit = 0.2 if scene.shape == 'tunnel' else 0.5
            radiance = effects.apply_haze(radiance, out.depth, effect['density'], lit,
                                          effect['seed'], tint=(0.9, 0.8, 0.65))
        if effect.get('kind') == 'defocus':
            radiance = cv2.GaussianBlur(radiance, (0, 0),
                                        effect['sigma'] * min(width, height) / 512)

        look = dict(self.look)
        look['grayscale'] = scene.camera.grayscale
        # Motion blur from the robot's vibration, now and then.
        if rng.random() < 0.3:
            look['blur_px'] = float(rng.uniform(1.5, 4.0) * min(width, height) / 512)
            look['blur_angle'] = float(rng.uniform(0, np.pi))
        look['exposure'] *= float(rng.uniform(0.95, 1.05))
        if gname == 'darkness':
            look['exposure'] *= 2.0
            look['noise'] *= 3.0
        image = camera_effects(radiance, CameraLook(**look), rng)
        if gname == 'dust':
            image = _dust_specks(image, effect, rng)
        if effect.get('kind') == 'dirty_lens':
            image = effects.dirty_lens(image, effect['smudges'], effect['seed'])
        if not out.valid.all():
            image[~out.valid] = 0

        semantic = out.semantic
        instances = out.instances
        if scene.camera.robot_body:
            body = robot_body_mask(width, height)
            _draw_body(image, width, height, scene.body_tint)
            semantic[body] = SEMANTIC_IDS['robot']
            instances[body] = 0
        visible = int(np.count_nonzero(instances))
        label, name, is_global = 0, 'normal', False
        if gkind is not None:
            label, name, is_global = gkind.id, gkind.name, True
        elif visible >= MIN_VISIBLE_FRACTION * width * height:
            kind = self._dominant_type(instances)
            label, name = kind.id, kind.name
        if label == 0 or is_global:
            # Nothing (or too little) to mask: the pixels keep the class of
            # the surface behind the object, and no instance.
            hidden = instances > 0
            semantic[hidden] = out.background[hidden]
            instances[:] = 0
        mask = (instances > 0).astype(np.uint8)
        contacts = floor_contacts(instances, out.depth, pose, intr)
        camera = (float(scene.camera.height), float(-scene.camera.pitch))
        return Frame(image, semantic, mask, instances, label, name, is_global, visible,
                     contacts, camera)

    def _dominant_type(self, instances):
        ids, counts = np.unique(instances[instances > 0], return_counts=True)
        area = {}
        for ident, count in zip(ids, counts):
            kind = self.instance_type[int(ident)]
            area[kind] = area.get(kind, 0) + int(count)
        return max(area, key=area.get)


def floor_contacts(instances, depth, pose, intr, on_floor_m=0.03):
    """Each instance's floor-touching point nearest to the camera; see :attr:`Frame.contacts`.

    A pixel touches the floor where its rendered 3-D point lies within
    ``on_floor_m`` of the floor plane (y = 0).
    """
    flat = instances.reshape(-1)
    sel = np.flatnonzero(flat)
    if sel.size == 0:
        return {}
    rays = pose.rays_of(intr, sel)     # only the instance pixels' rays: cheaper
    points = pose.origin + rays * depth.reshape(-1)[sel, None]
    rel = points - pose.origin
    ahead = np.array([-np.sin(pose.yaw), 0.0, np.cos(pose.yaw)])
    right = np.array([np.cos(pose.yaw), 0.0, np.sin(pose.yaw)])
    forward, lateral = rel @ ahead, rel @ right
    touching = points[:, 1] < on_floor_m
    out = {}
    ids = flat[sel]
    for ident in np.unique(ids):
        idx = np.flatnonzero((ids == ident) & touching)
        if idx.size == 0:
            continue
        best = idx[np.argmin(np.hypot(forward[idx], lateral[idx]))]
        out[int(ident)] = (float(forward[best]), float(lateral[best]))
    return out


def _dust_specks(image, effect, rng):
    out = image.copy()
    h, w = out.shape[:2]
    n = effect['specks']
    ys, xs = rng.integers(0, h, n), rng.integers(0, w, n)
    bright = rng.uniform(120, 255, n)
    for y, x, b in zip(ys, xs, bright):
        cv2.circle(out, (int(x), int(y)), int(rng.integers(1, 3)), (int(b),) * 3, -1,
                   cv2.LINE_AA)
    return cv2.GaussianBlur(out, (3, 3), 0) if rng.random() < 0.5 else out

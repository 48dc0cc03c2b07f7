"""Scenes of the synthetic world: a corridor, a factory hall, a tunnel.

:func:`build_scene` turns (environment, seed) into a :class:`Scene`: the
shell geometry, its textures, lighting, camera and look ranges. Anomalies
are added to a scene by :mod:`.anomalies`. Scenes are deterministic in their
seed and cached per process, because every frame of a sequence shares one.
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

import cv2
import numpy as np

from . import textures as tx
from .catalog import SEMANTIC_IDS
from .primitives import Pipe
from .render import CEILING
from .render import END
from .render import FLOOR
from .render import LEFT
from .render import RIGHT
from .render import VAULT

TILE_M = 24.0  # texture atlases repeat every TILE_M metres along the way
FLOOR_TILE_M = 8.0  # the fine-grained corridor floor repeats sooner


@dataclasses.dataclass
class Lighting:
    """Light model parameters (see :func:`.render._illumination`)."""

    level: float = 1.0
    ambient: float = 0.1
    pools: float = 0.35
    left_gain: float = 1.0
    right_gain: float = 1.0
    ceiling_gain: float = 0.55
    end_gain: float = 1.2
    lamp_radiance: float = 3.0
    headlamp: float = 0.0
    spot_width: float = 0.1
    falloff_m: float = 3.0


@dataclasses.dataclass
class CameraSetup:
    """Where the camera sits on the robot and what it sees."""

    height: float
    pitch: float
    hfov_deg: float
    fisheye: bool = False
    grayscale: bool = False
    robot_body: bool = True


@dataclasses.dataclass
class Scene:
    """Everything needed to render frames of one place."""

    environment: str
    seed: int
    shape: str                  # 'box' or 'tunnel'
    width: float
    height: float
    length: float
    surfaces: dict              # surface id -> Texture
    lighting: Lighting
    camera: CameraSetup
    floor_gloss: float = 0.3
    floor_sharpness: float = 0.5
    radius: float = 0.0
    axis_height: float = 0.0
    doors: list = dataclasses.field(default_factory=list)   # (side, z) of closed doors
    decals: list = dataclasses.field(default_factory=list)
    sprites: list = dataclasses.field(default_factory=list)
    boxes: list = dataclasses.field(default_factory=list)
    pipes: list = dataclasses.field(default_factory=list)
    body_tint: tuple = (1.0, 0.55, 0.08)

    @property
    def ceiling(self):
        return self.surfaces.get(CEILING)

    def textures(self):
        return self.surfaces

    def with_objects(self, decals=(), sprites=(), boxes=()):
        """Return a copy sharing the textures, with extra primitives added."""
        return dataclasses.replace(self, decals=self.decals + list(decals),
                                   sprites=self.sprites + list(sprites),
                                   boxes=self.boxes + list(boxes))


def _rng(*keys):
    return np.random.default_rng(np.random.SeedSequence([int(k) for k in keys]))


def _end_wall(rng, width, height, px_per_m, bright):
    """Build the far end of a corridor: a glazed door (bright) or a plain wall."""
    h, w = int(height * px_per_m), int(width * px_per_m)
    img = np.full((h, w, 3), 150, np.uint8)
    labels = np.full((h, w), SEMANTIC_IDS['wall'], np.uint8)
    emission = np.zeros((h, w), np.float32)
    if bright:
        x0, x1 = int(w * rng.uniform(0.15, 0.3)), int(w * rng.uniform(0.7, 0.85))
        y0 = int(h * rng.uniform(0.05, 0.3))
        img[y0:, x0:x1] = (235, 238, 240)
        emission[y0:, x0:x1] = rng.uniform(0.5, 1.0)
        for x in np.linspace(x0, x1, rng.integers(2, 5)).astype(int):
            cv2.line(img, (x, y0), (x, h - 1), (60, 50, 40), max(1, w // 60))
        labels[y0:, x0:x1] = SEMANTIC_IDS['other']
    return tx.Texture(img, labels, px_per_m, emission if bright else None)


# One building per environment, as in the Robomaster dataset: scenes are
# different corridors of the same university building, so their materials
# come from one small palette (with a little wear and tint), while geometry,
# doors, signs, lighting and texture details differ from scene to scene.
CORRIDOR_FLOORS = (
    ('terrazzo', (0.72, 0.70, 0.66), (0.15, 0.35), (0.2, 0.5)),
    ('terrazzo', (0.62, 0.61, 0.59), (0.15, 0.35), (0.2, 0.5)),
    ('polished', (0.62, 0.63, 0.64), (0.35, 0.7), (0.4, 0.85)),
)
CORRIDOR_WALLS = {'concrete': (0.66, 0.66, 0.64), 'wood': (0.72, 0.48, 0.22)}
CORRIDOR_CEILINGS = ((0.32, 0.32, 0.32), (0.78, 0.78, 0.78))
#: The robot's camera: one mounting for every run (pitch in degrees, down < 0).
CORRIDOR_CAMERA = {'height': 0.13, 'pitch': -7.0, 'hfov': 88.0}


def _jitter(rng, base, amount=0.05):
    return np.asarray(base) * rng.uniform(1 - amount, 1 + amount)


def _corridor(seed):
    rng = _rng(seed, 1)
    width = rng.uniform(2.2, 3.0)
    height = rng.uniform(2.8, 3.2)
    kind, base, gloss_range, sharp_range = CORRIDOR_FLOORS[rng.integers(len(CORRIDOR_FLOORS))]
    if kind == 'terrazzo':
        img, lab = tx.terrazzo(rng, width, FLOOR_TILE_M, 384, _jitter(rng, base),
                               speckle=rng.uniform(0.8, 1.2))
    else:
        img, lab = tx.polished_floor(rng, width, FLOOR_TILE_M, 384, _jitter(rng, base))
    gloss, sharp = rng.uniform(*gloss_range), rng.uniform(*sharp_range)
    floor = tx.Texture(img, lab, 384)

    walls, doors = {}, []
    for side, surf in (('left', LEFT), ('right', RIGHT)):
        kind = rng.choice(['concrete', 'wood'], p=[0.55, 0.45])
        base = _jitter(rng, CORRIDOR_WALLS[kind])
        if kind == 'concrete':
            img, lab = tx.concrete_wall(rng, TILE_M, height, 90, base)
            style = 'wood' if rng.random() < 0.5 else 'grey'
        else:
            img, lab = tx.wood_wall(rng, TILE_M, height, 90, base)
            style = 'grey'
        for z in tx.add_doors(rng, img, lab, 90, TILE_M, rng.uniform(3.5, 9.0), style):
            doors.append((side, z))
        tx.add_signs(rng, img, lab, 90, TILE_M, int(rng.integers(1, 5)))
        walls[surf] = tx.Texture(img, lab, 90)

    ceil_base = _jitter(rng, CORRIDOR_CEILINGS[rng.integers(len(CORRIDOR_CEILINGS))])
    img, lab, em = tx.corridor_ceiling(rng, width, TILE_M, 60, ceil_base,
                                       int(rng.integers(1, 3)), rng.uniform(0.1, 0.2),
                                       rng.random() < 0.6)
    ceiling = tx.Texture(img, lab, 60, em)
    end = _end_wall(rng, width, height, 40, rng.random() < 0.7)
    lighting = Lighting(level=rng.uniform(0.9, 1.1), ambient=0.08, pools=rng.uniform(0.25, 0.45),
                        left_gain=rng.uniform(0.9, 1.05), right_gain=rng.uniform(0.9, 1.05),
                        ceiling_gain=rng.uniform(0.65, 0.85), end_gain=rng.uniform(1.0, 1.5),
                        lamp_radiance=rng.uniform(2.8, 3.6))
    cam = CORRIDOR_CAMERA
    camera = CameraSetup(height=cam['height'] + rng.uniform(-0.005, 0.005),
                         pitch=np.radians(cam['pitch'] + rng.uniform(-1, 1)),
                         hfov_deg=cam['hfov'] + rng.uniform(-1, 1))
    return Scene('corridor', seed, 'box', width, height, 80.0,
                 {FLOOR: floor, CEILING: ceiling, LEFT: walls[LEFT], RIGHT: walls[RIGHT],
                  END: end},
                 lighting, camera, floor_gloss=gloss, floor_sharpness=sharp, doors=doors,
                 body_tint=(1.0, 0.52, 0.06))


def _factory_wall(rng, length, height, px_per_m):
    """Hall wall: concrete lower part, a band of large windows, pilasters."""
    base = np.array([0.6, 0.6, 0.6]) * rng.uniform(0.8, 1.1)
    img, lab = tx.concrete_wall(rng, length, height, px_per_m, base)
    h, w = lab.shape
    emission = np.zeros((h, w), np.float32)
    sill, top = rng.uniform(1.2, 2.5), height - rng.uniform(0.5, 1.5)
    bay = rng.uniform(3.0, 6.0)
    for z in np.arange(0.4, length - bay / 2, bay):
        x0, x1 = int((z + 0.3) * px_per_m), int((z + bay - 0.3) * px_per_m)
        y0, y1 = h - int(top * px_per_m), h - int(sill * px_per_m)
        img[y0:y1, x0:x1] = (225, 225, 225)
        emission[y0:y1, x0:x1] = rng.uniform(0.4, 0.8)
        lab[y0:y1, x0:x1] = SEMANTIC_IDS['other']
        for gx in np.linspace(x0, x1, rng.integers(3, 6)).astype(int):
            cv2.line(img, (gx, y0), (gx, y1), (40, 40, 40), 2)
        for gy in np.linspace(y0, y1, rng.integers(2, 5)).astype(int):
            cv2.line(img, (x0, gy), (x1, gy), (40, 40, 40), 2)
        cv2.rectangle(img, (x0 - 6, 0), (x0 - 1, h - 1), (90, 90, 90), -1)
    return tx.Texture(img, lab, px_per_m, emission)


def _factory(seed):
    rng = _rng(seed, 2)
    width, height = rng.uniform(9, 12), rng.uniform(6.5, 8)
    base = np.array([0.55, 0.55, 0.55]) * rng.uniform(0.8, 1.1)
    img, lab = tx.polished_floor(rng, width, TILE_M, 50, base)
    floor = tx.Texture(img, lab, 50)
    walls = {s: _factory_wall(rng, TILE_M, height, 40) for s in (LEFT, RIGHT)}
    # Ceiling: a grid of beams and pipes with skylight strips.
    h, w = int(width * 30), int(TILE_M * 30)
    cimg = (np.full((h, w, 3), 0.7, np.float32)
            * (0.8 + 0.3 * tx.fractal_noise(rng, (h, w), 40, 3))[..., None])
    cimg = tx._to_u8(cimg)
    clab = np.full((h, w), SEMANTIC_IDS['ceiling'], np.uint8)
    cem = np.zeros((h, w), np.float32)
    for z in np.arange(0, TILE_M, rng.uniform(2.0, 4.0)):
        cv2.line(cimg, (int(z * 30), 0), (int(z * 30), h - 1), (50, 50, 50), 6)
    for x in np.linspace(0, h, rng.integers(3, 7)).astype(int):
        cv2.line(cimg, (0, x), (w - 1, x), (80, 80, 80), 3)
    for x in rng.uniform(0.2, 0.8, 2) * h:
        cimg[int(x) - 8:int(x) + 8] = 240
        cem[int(x) - 8:int(x) + 8] = 1.0
        clab[int(x) - 8:int(x) + 8] = SEMANTIC_IDS['light']
    ceiling = tx.Texture(cimg, clab, 30, cem)
    end = _end_wall(rng, width, height, 10, True)
    lighting = Lighting(level=rng.uniform(0.8, 1.1), ambient=0.12, pools=0.2,
                        ceiling_gain=0.6, end_gain=1.3, lamp_radiance=rng.uniform(1.5, 2.5))
    camera = CameraSetup(height=0.32 + rng.uniform(-0.01, 0.01),
                         pitch=np.radians(35 + rng.uniform(-2, 2)),
                         hfov_deg=148 + rng.uniform(-2, 2), fisheye=True, grayscale=True,
                         robot_body=False)
    return Scene('factory', seed, 'box', width, height, 80.0,
                 {FLOOR: floor, CEILING: ceiling, LEFT: walls[LEFT], RIGHT: walls[RIGHT],
                  END: end},
                 lighting, camera, floor_gloss=rng.uniform(0.1, 0.3),
                 floor_sharpness=0.3)


def _tunnel(seed):
    rng = _rng(seed, 3)
    radius = rng.uniform(1.9, 2.3)
    axis = radius * rng.uniform(0.5, 0.65)
    arc = 2 * np.pi * radius
    img, lab = tx.rock_wall(rng, TILE_M, arc, 60, np.array([0.55, 0.52, 0.5]))
    vault = tx.Texture(img, lab, 60)
    half = np.sqrt(max(radius ** 2 - axis ** 2, 0.1))
    img, lab = tx.gravel_floor(rng, 2 * half + 0.2, TILE_M, 80, np.array([0.35, 0.34, 0.33]))
    floor = tx.Texture(img, lab, 80)
    lighting = Lighting(level=0.0, ambient=rng.uniform(0.01, 0.03),
                        headlamp=rng.uniform(2.5, 4.0), spot_width=rng.uniform(0.12, 0.25),
                        falloff_m=rng.uniform(2.5, 5.0), lamp_radiance=0.0)
    camera = CameraSetup(height=0.4 + rng.uniform(-0.01, 0.01),
                         pitch=np.radians(10 + rng.uniform(-2, 2)),
                         hfov_deg=105 + rng.uniform(-2, 2), grayscale=True, robot_body=False)
    scene = Scene('tunnel', seed, 'tunnel', 2 * half, 2 * radius, 80.0,
                  {FLOOR: floor, VAULT: vault}, lighting, camera,
                  floor_gloss=rng.uniform(0.0, 0.1), floor_sharpness=0.2, radius=radius,
                  axis_height=axis)
    # Pipes along the floor: normal scenery, class 'other'.
    pipes = []
    for side in (-1, 1):
        if rng.random() < 0.8:
            r = rng.uniform(0.06, 0.15)
            pipes.append(Pipe(x=side * (half - r - rng.uniform(0.0, 0.2)),
                              y=r + rng.uniform(0.0, 0.3), radius=r,
                              colour=tuple(rng.uniform(0.4, 0.7) * np.ones(3)),
                              label=SEMANTIC_IDS['other']))
    scene.pipes = pipes
    return scene


_BUILDERS = {'corridor': _corridor, 'factory': _factory, 'tunnel': _tunnel}


@functools.lru_cache(maxsize=8)
def build_scene(environment, seed):
    """Build (and cache) the empty scene of ``environment`` for ``seed``."""
    try:
        builder = _BUILDERS[environment]
    except KeyError:
        raise ValueError(
            f'Unknown environment {environment!r}; known: {", ".join(_BUILDERS)}.') from None
    return builder(int(seed))

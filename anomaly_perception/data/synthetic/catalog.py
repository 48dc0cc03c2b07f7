"""What the synthetic world contains: environments, semantic classes, anomaly types.

Anomaly type names follow the Robomaster (Hazards&Robots) dataset where it
has the type. Ids are stable: they are written into datasets and bags.
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

#: Semantic classes of normal scenes (what a segmenter is trained on).
SEMANTIC_CLASSES = ('floor', 'wall', 'ceiling', 'door', 'light', 'robot', 'other')
SEMANTIC_IDS = {name: i for i, name in enumerate(SEMANTIC_CLASSES)}
VOID = 255

ENVIRONMENTS = ('corridor', 'factory', 'tunnel')


@dataclasses.dataclass(frozen=True)
class AnomalyType:
    """One kind of anomaly the world can place.

    Attributes:
        id: label id (0 is normal).
        name: label name.
        scope: ``'local'`` (has a pixel mask and instances) or ``'global'``
            (affects the whole image: flagged, no mask).
        environments: where it can appear.
        description: what it looks like.

    """

    id: int  # noqa: A003 - the label id, as in the dataset's CSV
    name: str
    scope: str
    environments: tuple
    description: str

    @property
    def is_global(self):
        return self.scope == 'global'


_C, _F, _T = ('corridor',), ('factory',), ('tunnel',)

ANOMALY_TYPES = tuple(AnomalyType(*row) for row in [
    (1, 'water', 'local', _C + _F, 'a puddle on the floor mirroring the ceiling lights'),
    (2, 'cable', 'local', _C + _F, 'a loose cable lying on the floor'),
    (3, 'hanging_cable', 'local', _C + _F, 'a cable hanging down from the ceiling'),
    (4, 'cellophane', 'local', _C, 'a crumpled translucent plastic sheet on the floor'),
    (5, 'defects', 'global', _C + _F + _T,
     'camera defect: defocus, a misaligned camera, or a dirty lens'),
    (6, 'floor', 'local', _C, 'a rug or a different floor covering'),
    (7, 'human', 'local', _C + _F, 'a person standing or walking in front of the robot'),
    (8, 'screws', 'local', _C + _F, 'a scatter of small screws and nuts'),
    (9, 'boxes', 'local', _C + _F, 'one or more cardboard boxes'),
    (10, 'door', 'local', _C, 'a door standing open where doors are closed'),
    (11, 'cones', 'local', _C + _F, 'traffic cones'),
    (12, 'tape', 'local', _C + _F, 'striped warning tape across the way'),
    (13, 'trolley', 'local', _C + _F, 'a service trolley'),
    (14, 'debris', 'local', _C + _F + _T, 'paper cups, wrappers and scraps'),
    (15, 'sawdust', 'local', _C, 'a pile of sawdust'),
    (16, 'foam', 'local', _C, 'white foam blocks'),
    (17, 'clutter', 'local', _C, 'chairs and tables in the way'),
    (18, 'mist', 'global', _C + _F + _T, 'mist or smoke filling the air'),
    (19, 'darkness', 'global', _C + _F + _T, 'lights off: a dark, noisy frame'),
    (20, 'dust', 'global', _T + _F, 'airborne dust lit by the lamps'),
    (21, 'roots', 'local', _T, 'roots hanging from the tunnel vault'),
    (22, 'wet', 'local', _T, 'wet, glistening patches on the tunnel floor'),
])

TYPES_BY_NAME = {t.name: t for t in ANOMALY_TYPES}
GLOBAL_TYPES = frozenset(t.name for t in ANOMALY_TYPES if t.is_global)   # whole-image labels
TYPES_BY_ID = {t.id: t for t in ANOMALY_TYPES}
LABEL_NAMES = {0: 'normal', **{t.id: t.name for t in ANOMALY_TYPES}}


def anomaly_type(name):
    """Return the :class:`AnomalyType` called ``name``.

    Raises:
        ValueError: unknown name; the message lists the known ones.

    """
    try:
        return TYPES_BY_NAME[name]
    except KeyError:
        raise ValueError(
            f'Unknown anomaly type {name!r}; known types: {", ".join(TYPES_BY_NAME)}.'
        ) from None


def types_for(environment):
    """Anomaly types that can appear in ``environment``."""
    return tuple(t for t in ANOMALY_TYPES if environment in t.environments)

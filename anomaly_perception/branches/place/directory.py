"""A place directory on disk: read and checked without the training code (no PyTorch).

What the robot's ``hazard_monitor`` and ``replay --place`` need of a place
written by ``train place`` (:mod:`.place`): :func:`load_place` checks every
file against the manifest, the camera, each branch's model directory, and
returns a :class:`Place`.
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
from pathlib import Path

import yaml

from ...replay.monitor import MonitorSpec
from ...runtime.manifest import load_manifest
from ...runtime.manifest import ModelError
from ...runtime.manifest import sha256_file
from ...stream.hazard import HazardConfig

PLACE_FILE = 'place.yaml'
MANIFEST = 'manifest.yaml'
FORMAT = 'anomaly_perception.place/1'
BRANCHES = ('frame', 'pixel')
OPTIONAL_BRANCHES = ('instance',)


class PlaceError(ModelError):
    """A place directory is missing, incomplete, changed, or its parts do not belong together."""


@dataclasses.dataclass
class Place:
    """A loaded place: its branches' model directories and its fused flag."""

    path: Path
    frame_dir: Path
    pixel_dir: Path
    place: dict
    instance_dir: Path = None

    @property
    def fusion(self):
        return self.place['fusion']

    def hazard_config(self):
        """Return the fused flag's :class:`~...stream.hazard.HazardConfig`."""
        f = self.fusion
        return HazardConfig(**{**f['hazard_filter'], 'on_probability': f['on_probability'],
                               'off_probability': f['off_probability']})

    def model_dirs(self):
        """Return ``{branch: model directory}`` (``instance`` only if the place has one)."""
        dirs = {'frame': self.frame_dir, 'pixel': self.pixel_dir}
        if self.instance_dir is not None:
            dirs['instance'] = self.instance_dir
        return dirs

    def monitor_spec(self):
        """Return the replay's :class:`~...replay.monitor.MonitorSpec` of the fused flag."""
        return MonitorSpec(self.hazard_config(), tuple(self.fusion['branches']),
                           self.fusion['rule'], str(self.path))


def _read_yaml(path, what):
    try:
        data = yaml.safe_load(Path(path).read_text())
    except FileNotFoundError:
        raise PlaceError(f'{str(path.parent)!r} is not a place directory: no {path.name} '
                         f'({what}).') from None
    except (yaml.YAMLError, UnicodeDecodeError) as err:
        raise PlaceError(f'{str(path)!r} is not valid YAML: {err}') from None
    if not isinstance(data, dict) or data.get('format') != FORMAT:
        raise PlaceError(f'{str(path)!r} is not a place file (expected format {FORMAT!r}).')
    return data


def load_place(path, *, verify=True):
    """Read and check a place directory; return a :class:`Place`.

    Raises:
        PlaceError: no such directory, a missing, corrupt or changed file, a
            place whose models were learnt from different cameras, or a branch
            directory holding the wrong kind of model (each names the file).

    """
    path = Path(path)
    if not path.is_dir():
        raise PlaceError(f'Place directory {str(path)!r} does not exist.')
    manifest = _read_yaml(path / MANIFEST, 'sha256 of every file')
    if verify:
        for name, info in (manifest.get('files') or {}).items():
            file = path / name
            if not file.is_file():
                raise PlaceError(f'Place file {str(file)!r} listed in {MANIFEST} is missing.')
            if file.stat().st_size != info.get('bytes') or sha256_file(file) != info.get(
                    'sha256'):
                raise PlaceError(f'Place file {str(file)!r} fails its size or sha256 check: it '
                                 'is corrupt or was changed after the place was written.')
    place = _read_yaml(path / PLACE_FILE, 'the fused flag and the camera')
    dirs = {}
    for branch in BRANCHES + OPTIONAL_BRANCHES:
        sub = (place.get('branches') or {}).get(branch)
        if not sub and branch in OPTIONAL_BRANCHES:
            continue
        if not sub:
            raise PlaceError(f'{str(path / PLACE_FILE)!r} names no {branch} model.')
        dirs[branch] = path / sub
        try:
            model = load_manifest(dirs[branch], branch=branch, verify=verify)
        except ModelError as err:
            raise PlaceError(f'Place {str(path)!r}: {err}') from None
        size = _camera_of_model(model)
        if size is not None and size != list(place['camera']['resolution']):
            raise PlaceError(
                f'Place {str(path)!r}: its {branch} model ({str(dirs[branch] / MANIFEST)!r}) '
                f'was learnt from a {size[0]}x{size[1]} camera, {PLACE_FILE} says '
                f'{place["camera"]["resolution"][0]}x{place["camera"]["resolution"][1]}: the '
                'parts of this place do not belong together.')
    return Place(path, dirs['frame'], dirs['pixel'], place, dirs.get('instance'))


def _camera_of_model(manifest):
    """Return ``[width, height]`` of the camera a model was learnt from (None if unknown)."""
    prov = manifest.get('provenance') or {}
    if prov.get('resolution'):
        return list(prov['resolution'])
    bags = (prov.get('data') or {}).get('bags') or prov.get('bags') or []
    if bags and bags[0].get('resolution'):
        return list(bags[0]['resolution'])
    return None

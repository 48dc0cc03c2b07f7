"""Model directories: ``manifest.yaml`` + weights, verified by sha256.

A model is a directory::

    manifest.yaml   format, branch, architecture, preprocessing, calibration,
                    threshold, files (name -> sha256, bytes), provenance,
                    validation metrics
    *.pt            weights (torch state dicts)

:func:`write_model_dir` writes it atomically (the directory appears
complete or not at all); :func:`load_manifest` checks every listed file's
size and sha256 and fails with a message naming the file.
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

import hashlib
import json
import os
from pathlib import Path
import sys
import sysconfig

import yaml

from ..errors import AnomalyPerceptionError
from ..io.files import atomic_directory
from ..io.files import atomic_write_bytes
from ..io.files import atomic_write_text

MANIFEST = 'manifest.yaml'
FORMAT = 'anomaly_perception/model@1'


class ModelError(AnomalyPerceptionError):
    """A model directory is missing, incomplete, corrupt or of the wrong kind."""


def sha256_file(path):
    digest = hashlib.sha256()
    with open(path, 'rb') as handle:
        for block in iter(lambda: handle.read(1 << 20), b''):
            digest.update(block)
    return digest.hexdigest()


def plain_data(obj):
    """Plain YAML-safe data: numpy scalars, paths and str subclasses converted."""
    def default(value):
        if hasattr(value, 'item'):
            return value.item()
        return str(value)
    return json.loads(json.dumps(obj, default=default))


def _dump(manifest):
    return yaml.safe_dump(plain_data(manifest), sort_keys=False, default_flow_style=None,
                          width=100)


def write_model_dir(out, manifest, files, *, overwrite=False):
    """Write a model directory.

    Args:
        out: destination directory.
        manifest: dict of everything but ``format`` and ``files`` (added here).
        files: ``{name: bytes}`` to write next to the manifest.
        overwrite: replace an existing directory.

    Returns:
        The complete manifest as written.

    """
    manifest = plain_data({'format': FORMAT, **manifest, 'files': {}})
    with atomic_directory(out, overwrite=overwrite) as tmp:
        for name, data in files.items():
            (tmp / name).write_bytes(data)
            manifest['files'][name] = {'sha256': hashlib.sha256(data).hexdigest(),
                                       'bytes': len(data)}
        (tmp / MANIFEST).write_text(_dump(manifest))
    return manifest


def add_files(model_dir, files, updates=None):
    """Add files to an existing model directory and record them (manifest rewritten atomically)."""
    model_dir = Path(model_dir)
    manifest = load_manifest(model_dir)
    for name, data in files.items():
        atomic_write_bytes(model_dir / name, data)
        manifest['files'][name] = {'sha256': hashlib.sha256(data).hexdigest(),
                                   'bytes': len(data)}
    manifest.update(updates or {})
    atomic_write_text(model_dir / MANIFEST, _dump(manifest))
    return manifest


def load_manifest(model_dir, *, branch=None, verify=True):
    """Read and check ``model_dir/manifest.yaml``.

    Raises:
        ModelError: no such directory or manifest, invalid YAML, wrong format
            or branch, or a listed file missing or failing its size/sha256
            check (the message names the file).

    """
    model_dir = Path(model_dir)
    path = model_dir / MANIFEST
    if not model_dir.is_dir():
        raise ModelError(f'Model directory {str(model_dir)!r} does not exist.')
    try:
        manifest = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise ModelError(f'{str(model_dir)!r} is not a model directory: no {MANIFEST}.') \
            from None
    except yaml.YAMLError as err:
        raise ModelError(f'{str(path)!r} is not valid YAML: {err}') from None
    if not isinstance(manifest, dict) or manifest.get('format') != FORMAT:
        raise ModelError(f'{str(path)!r} is not an anomaly_perception model manifest '
                         f'(expected format {FORMAT!r}).')
    if branch is not None and manifest.get('branch') != branch:
        raise ModelError(f'{str(model_dir)!r} holds a {manifest.get("branch")!r} model, '
                         f'expected a {branch!r} model.')
    if verify:
        for name, info in (manifest.get('files') or {}).items():
            file = model_dir / name
            if not file.is_file():
                raise ModelError(f'Model file {str(file)!r} listed in the manifest is missing.')
            size = file.stat().st_size
            if size != info.get('bytes', size):
                raise ModelError(f'Model file {str(file)!r} has {size} bytes, the manifest '
                                 f'says {info["bytes"]}: it is truncated or was replaced.')
            if sha256_file(file) != info.get('sha256'):
                raise ModelError(f'Model file {str(file)!r} fails its sha256 check: it is '
                                 'corrupt or was changed after the manifest was written.')
    return manifest


def shipped_model_dir(name):
    """Find a model shipped with the package (``models/<name>``).

    Looked for next to the package (a source checkout or editable
    install), then under ``share/anomaly_perception/models`` of the Python
    prefix and of every ``AMENT_PREFIX_PATH`` entry (colcon installs).

    Raises:
        ModelError: not found; the message lists where it looked.

    """
    here = Path(__file__).resolve().parents[1]
    roots = [here.parent / 'models']
    prefixes = [sys.prefix, sysconfig.get_path('data')]
    prefixes += [p for p in os.environ.get('AMENT_PREFIX_PATH', '').split(os.pathsep) if p]
    roots += [Path(p) / 'share' / 'anomaly_perception' / 'models' for p in prefixes]
    for root in roots:
        if (root / name / MANIFEST).is_file():
            return root / name
    raise ModelError(f'The shipped model {name!r} was not found (looked in '
                     f'{", ".join(str(r) for r in roots)}); pass a model directory.')


def model_input_shape(preprocessing):
    """``(height, width)`` of a model's input from its manifest ``preprocessing``.

    Accepts ``input_shape: [h, w]`` and the older square ``input_size: s``.
    """
    if 'input_shape' in preprocessing:
        height, width = preprocessing['input_shape']
        return int(height), int(width)
    size = int(preprocessing['input_size'])
    return size, size

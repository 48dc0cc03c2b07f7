"""Atomic file and directory output.

Every result the package writes (bags, datasets, reports, checkpoints) is
first written under a temporary name next to its destination and renamed
into place when complete, so an interrupted run never leaves a half-written
file where a finished one is expected.
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

import contextlib
import json
import os
from pathlib import Path
import shutil
import tempfile

from ..errors import AnomalyPerceptionError
from ..errors import UsageError


class OutputExistsError(AnomalyPerceptionError, FileExistsError):
    """The destination exists and overwriting was not asked for."""


def _umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask


# tempfile creates private (0600/0700) entries; results get the usual
# permissions (0644/0755 under the common umask) before they are renamed.
_FILE_MODE = 0o666 & ~_umask()
_DIR_MODE = 0o777 & ~_umask()


def _check_parent(path):
    parent = path.parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise AnomalyPerceptionError(
            f'Cannot create the folder {str(parent)!r} for {str(path)!r}: {err.strerror}.'
        ) from None
    if not os.access(parent, os.W_OK):
        raise AnomalyPerceptionError(f'Cannot write to {str(parent)!r}: permission denied.')


def atomic_write_bytes(path, data):
    """Write ``data`` to ``path`` via a temporary file and an atomic rename."""
    path = Path(path)
    _check_parent(path)
    fd, tmp = tempfile.mkstemp(prefix=f'.{path.name}.', suffix='.partial', dir=path.parent)
    try:
        with os.fdopen(fd, 'wb') as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, _FILE_MODE)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def atomic_write_text(path, text):
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    atomic_write_bytes(path, text.encode('utf-8'))


def atomic_write_npy(path, array):
    """Write ``array`` as a ``.npy`` file to ``path`` atomically."""
    import io

    import numpy as np
    buf = io.BytesIO()
    np.save(buf, np.asarray(array), allow_pickle=False)
    atomic_write_bytes(path, buf.getvalue())


def atomic_write_json(path, obj, **kwargs):
    """Write ``obj`` as indented JSON to ``path`` atomically."""
    kwargs.setdefault('indent', 2)
    atomic_write_text(path, json.dumps(obj, **kwargs) + '\n')


@contextlib.contextmanager
def atomic_directory(path, *, overwrite=False, create=True):
    """Build a directory under a temporary name; rename it to ``path`` on success.

    Yields the temporary path. On an exception the temporary directory is
    removed and ``path`` is left as it was. With ``overwrite``, an existing
    ``path`` is replaced only once the new one is complete.

    Args:
        path: final location.
        overwrite: replace an existing ``path``.
        create: create the temporary directory (``False`` yields a fresh,
            not yet existing path, for writers that insist on creating it).

    Raises:
        OutputExistsError: ``path`` exists and ``overwrite`` is false.

    """
    path = Path(path)
    if path.exists() and not overwrite:
        raise OutputExistsError(
            f'{str(path)!r} already exists; choose another path or pass --overwrite.'
        )
    _check_parent(path)
    holder = Path(tempfile.mkdtemp(prefix=f'.{path.name}.', suffix='.partial', dir=path.parent))
    tmp = holder / path.name
    if create:
        tmp.mkdir()
    try:
        yield tmp
        if tmp.exists():
            os.chmod(tmp, _DIR_MODE)
        if path.exists():
            old = holder / (path.name + '.old')
            os.replace(path, old)
        os.replace(tmp, path)
    finally:
        shutil.rmtree(holder, ignore_errors=True)


IMAGE_SUFFIXES = ('.jpg', '.jpeg', '.png', '.bmp')


def image_files(paths):
    """Return the image files of ``paths`` (files, or folders whose images are taken sorted).

    Raises:
        AnomalyPerceptionError: a path that is neither, or no image at all.

    """
    files = []
    for p in map(Path, paths):
        if p.is_dir():
            files += sorted(f for f in p.iterdir() if f.suffix.lower() in IMAGE_SUFFIXES)
        elif p.is_file():
            files.append(p)
        else:
            raise AnomalyPerceptionError(f'{str(p)!r} is neither an image file nor a folder.')
    if not files:
        raise AnomalyPerceptionError('No images to score.')
    return files


def output_folder(path, what):
    """Create and return the folder ``path`` that ``what`` writes its files into.

    Raises:
        UsageError: no folder given (``--out``).

    """
    if not path:
        raise UsageError(f'{what} writes images: give --out DIR.')
    out = Path(path)
    out.mkdir(parents=True, exist_ok=True)
    return out

"""The Hazards&Robots dataset layout, keyed by file name.

A dataset root holds split folders of images (``train_set/``,
``validation_set/``, ``test_set/``, ``outliers_set/``) and labels in
``metadata/frames_labels.csv``:

* with a file-name column (``filename``; also accepted: ``frame``,
  ``file``, ``image``), rows are matched to files by name, and a ``split``
  column (optional) says which folder; this is what ``synth dataset``
  writes;
* without one, per-split files ``metadata/<split>_labels.csv`` are read
  with their rows in the sorted order of the split folder's files (the
  convention of the original Robomaster release); the row count must equal
  the file count.

A ``label`` column is required (0 = normal); ``label_name``, ``sequence``
and ``environment`` are used when present. Any disagreement between the
CSV and the folders (a row without its image, an image without its row)
is an error naming the file.

The original release's exact CSV columns could not be checked here; if
yours differ, write a ``frames_labels.csv`` in the form above.
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

import csv
import dataclasses
import hashlib
import os
from pathlib import Path

import cv2
import numpy as np

from ..errors import AnomalyPerceptionError
from ..io.files import atomic_write_npy
from ..runtime.preprocess import as_shape
from ..runtime.preprocess import fit_resize

SPLITS = ('train_set', 'validation_set', 'test_set', 'outliers_set')
IMAGE_SUFFIXES = ('.jpg', '.jpeg', '.png')
FILENAME_COLUMNS = ('filename', 'frame', 'file', 'image')


class DatasetError(AnomalyPerceptionError):
    """A dataset folder or its label file is missing or inconsistent."""


@dataclasses.dataclass(frozen=True)
class FrameRecord:
    """One labelled image of the dataset."""

    filename: str
    split: str
    label: int
    label_name: str
    sequence: str
    environment: str
    path: Path

    @property
    def is_anomaly(self):
        return self.label != 0


def _images_in(folder):
    if not folder.is_dir():
        return []
    return sorted(p.name for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)


def _read_csv(path):
    try:
        with open(path, newline='') as handle:
            reader = csv.DictReader(handle)
            rows = list(reader)
            columns = reader.fieldnames or []
    except OSError as err:
        raise DatasetError(f'Cannot read labels {str(path)!r}: {err.strerror}.') from None
    except csv.Error as err:
        raise DatasetError(f'{str(path)!r} is not a valid CSV file: {err}.') from None
    if 'label' not in columns:
        raise DatasetError(f'{str(path)!r} has no "label" column (columns: {columns}).')
    return rows, columns


def _int_label(value, path, where):
    try:
        return int(value)
    except (TypeError, ValueError):
        raise DatasetError(f'{str(path)!r}, {where}: label {value!r} is not an integer.') \
            from None


class HazardsDataset:
    """Index of a dataset in the Hazards&Robots layout (see module docs).

    Example::

        data = HazardsDataset('out/data/medium')
        normals = data.records('train_set', anomalous=False)
        images = data.load_images(normals, size=64)     # uint8 [N, 64, 64, 3]

    Raises:
        DatasetError: missing folder or labels, or labels that disagree with
            the image folders.

    """

    def __init__(self, root):
        self.root = Path(root)
        if not self.root.is_dir():
            raise DatasetError(f'Dataset folder {str(self.root)!r} does not exist.')
        self._records = self._index()

    def _index(self):
        keyed = self.root / 'metadata' / 'frames_labels.csv'
        if keyed.is_file():
            rows, columns = _read_csv(keyed)
            name_col = next((c for c in FILENAME_COLUMNS if c in columns), None)
            if name_col is not None:
                return self._index_keyed(keyed, rows, name_col, columns)
            raise DatasetError(f'{str(keyed)!r} has no file-name column (one of '
                               f'{", ".join(FILENAME_COLUMNS)}); per-split label files '
                               'must be named metadata/<split>_labels.csv.')
        records = []
        for split in SPLITS:
            path = self.root / 'metadata' / f'{split}_labels.csv'
            if path.is_file():
                records += self._index_ordered(path, split)
        if not records:
            raise DatasetError(f'{str(self.root)!r} has no labels: expected '
                               'metadata/frames_labels.csv or metadata/<split>_labels.csv.')
        return records

    def _index_keyed(self, path, rows, name_col, columns):
        folders = {split: set(_images_in(self.root / split)) for split in SPLITS}
        records, seen = [], set()
        for i, row in enumerate(rows, start=2):
            name = row[name_col]
            split = row.get('split') or next((s for s in SPLITS if name in folders[s]), None)
            if split not in folders or name not in folders[split]:
                raise DatasetError(f'{str(path)!r} line {i}: {name!r} is not in '
                                   f'{split or "any split folder"}/.')
            if (split, name) in seen:
                raise DatasetError(f'{str(path)!r} line {i}: {name!r} is listed twice.')
            seen.add((split, name))
            records.append(self._record(row, name, split, path, f'line {i}'))
        for split, names in folders.items():
            unlabelled = sorted(n for n in names if (split, n) not in seen)
            if unlabelled:
                raise DatasetError(
                    f'{len(unlabelled)} image(s) in {split}/ have no row in {str(path)!r}, '
                    f'e.g. {unlabelled[0]!r}.')
        return records

    def _index_ordered(self, path, split):
        rows, _ = _read_csv(path)
        names = _images_in(self.root / split)
        if len(rows) != len(names):
            raise DatasetError(f'{str(path)!r} has {len(rows)} rows but {split}/ has '
                               f'{len(names)} images; rows are matched to sorted file names.')
        return [self._record(row, name, split, path, f'row {i + 1}')
                for i, (row, name) in enumerate(zip(rows, names))]

    def _record(self, row, name, split, path, where):
        label = _int_label(row.get('label'), path, where)
        return FrameRecord(
            filename=name, split=split, label=label,
            label_name=row.get('label_name') or ('normal' if label == 0 else str(label)),
            sequence=row.get('sequence') or '', environment=row.get('environment') or '',
            path=self.root / split / name)

    def records(self, split=None, anomalous=None, label_names=None):
        """Return records, optionally of one split, only normal/anomalous, or of some types."""
        out = self._records
        if split is not None:
            if split not in SPLITS:
                raise DatasetError(f'Unknown split {split!r}; splits: {", ".join(SPLITS)}.')
            out = [r for r in out if r.split == split]
        if anomalous is not None:
            out = [r for r in out if r.is_anomaly == anomalous]
        if label_names is not None:
            out = [r for r in out if r.label_name in label_names]
        return out

    def counts(self):
        """``{split: {label_name: count}}``."""
        result = {}
        for r in self._records:
            result.setdefault(r.split, {}).setdefault(r.label_name, 0)
            result[r.split][r.label_name] += 1
        return result

    def load_images(self, records, size=64, cache_dir=None, progress=False):
        """Decode, centre-crop and resize ``records``' images: ``uint8 [N, h, w, 3]`` RGB.

        ``size`` is a side (square) or ``(h, w)``.

        With ``cache_dir``, the array is cached there (keyed by the dataset
        path, file names, sizes and modification times) and reused.
        """
        records = list(records)
        height, width = as_shape(size)
        label = f'{height}x{width}' if height != width else str(height)
        cache = None
        if cache_dir is not None:
            key = hashlib.sha256()
            key.update(str(self.root.resolve()).encode())
            key.update(label.encode())
            for r in records:
                st = r.path.stat()
                key.update(f'{r.split}/{r.filename}:{st.st_size}:{st.st_mtime_ns}'.encode())
            cache = Path(cache_dir) / f'frames_{label}_{key.hexdigest()[:20]}.npy'
            if cache.is_file():
                try:
                    arr = np.load(cache)
                    if arr.shape == (len(records), height, width, 3):
                        return arr
                except (OSError, ValueError):
                    pass  # a damaged cache is rebuilt
        out = np.empty((len(records), height, width, 3), np.uint8)
        iterator = records
        if progress:
            from tqdm import tqdm
            iterator = tqdm(records, desc=f'loading {height}x{width} frames', unit='img')
        for i, r in enumerate(iterator):
            img = cv2.imread(str(r.path), cv2.IMREAD_COLOR)
            if img is None:
                raise DatasetError(f'Cannot decode image {str(r.path)!r}.')
            out[i] = fit_resize(cv2.cvtColor(img, cv2.COLOR_BGR2RGB), size)
        if cache is not None:
            atomic_write_npy(cache, out)
        return out


def default_cache_dir():
    """Where decoded training frames are cached (``$ANOMALY_PERCEPTION_CACHE`` overrides)."""
    return Path(os.environ.get('ANOMALY_PERCEPTION_CACHE',
                               Path.home() / '.cache' / 'anomaly_perception'))

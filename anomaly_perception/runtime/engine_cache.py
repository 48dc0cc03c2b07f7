"""A per-GPU cache of TensorRT engines, rebuilt when they do not fit.

A serialized TensorRT engine only loads on the TensorRT version and GPU
that built it ("version tag does not match"). Engines are therefore cached
under a key of everything they depend on: the ONNX graph's sha256, the
TensorRT version, the GPU name and compute capability, the precision and
the batch range of the optimisation profile. A cached engine that fails
to deserialize is rebuilt (and the reason logged), never fatal. A cache
directory that cannot be created or written still works: the engine is
built and used from memory, with a warning.

This module does not import TensorRT: the backend hands it ``build`` and
``deserialize`` callables, so the logic is tested without a GPU.
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
import hashlib
import json
import logging
import os
from pathlib import Path

from ..io.files import atomic_write_bytes
from ..io.files import atomic_write_text

LOG = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class EngineKey:
    """Everything a serialized engine depends on."""

    onnx_sha256: str
    tensorrt_version: str
    gpu_name: str
    compute_capability: str
    precision: str
    min_batch: int
    opt_batch: int
    max_batch: int

    def digest(self):
        text = json.dumps(dataclasses.asdict(self), sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:32]


def default_cache_dir():
    """``$ANOMALY_PERCEPTION_ENGINE_CACHE``, else ``~/.cache/anomaly_perception/engines``."""
    env = os.environ.get('ANOMALY_PERCEPTION_ENGINE_CACHE')
    return Path(env) if env else Path.home() / '.cache' / 'anomaly_perception' / 'engines'


class EngineCache:
    """Load a cached engine for a key, or build, store and load one."""

    def __init__(self, cache_dir=None):
        self.cache_dir = Path(cache_dir) if cache_dir is not None else default_cache_dir()

    def path(self, key):
        return self.cache_dir / f'{key.digest()}.engine'

    def load_or_build(self, key, build, deserialize):
        """Return ``(engine, status)``; status is ``'cached'``, ``'built'`` or ``'rebuilt'``.

        Args:
            key: the :class:`EngineKey`.
            build: ``() -> bytes`` builds a serialized engine (slow).
            deserialize: ``bytes -> engine``; raises on an unusable engine.

        """
        path = self.path(key)
        status = 'built'
        if path.is_file():
            try:
                engine = deserialize(path.read_bytes())
                if engine is None:
                    raise ValueError('deserialization returned no engine')
                LOG.info('TensorRT engine loaded from cache %s', path)
                return engine, 'cached'
            except Exception as err:  # noqa: B902 - whatever the runtime raises
                LOG.warning('Cached TensorRT engine %s cannot be used (%s); rebuilding it.',
                            path, err)
                status = 'rebuilt'
        LOG.info('Building a TensorRT engine (%s, batch %d-%d); this can take minutes.',
                 key.precision, key.min_batch, key.max_batch)
        data = bytes(build())
        self._store(path, key, data)
        return deserialize(data), status

    def _store(self, path, key, data):
        try:
            self.cache_dir.mkdir(parents=True, exist_ok=True)
            atomic_write_bytes(path, data)
            atomic_write_text(path.with_suffix('.json'),
                              json.dumps(dataclasses.asdict(key), indent=2) + '\n')
        except Exception as err:  # noqa: B902 - read-only or missing directories alike
            LOG.warning('Cannot write the TensorRT engine cache %s (%s); the engine is used '
                        'from memory and will be rebuilt next time.', self.cache_dir, err)

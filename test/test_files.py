"""Atomic outputs: complete or absent, never half-written."""

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

import json

from anomaly_perception.errors import AnomalyPerceptionError
from anomaly_perception.io.files import atomic_directory
from anomaly_perception.io.files import atomic_write_json
from anomaly_perception.io.files import OutputExistsError
import pytest


def test_atomic_json_replaces_whole_file(tmp_path):
    path = tmp_path / 'report.json'
    atomic_write_json(path, {'auroc': 0.5})
    atomic_write_json(path, {'auroc': 0.75})
    assert json.loads(path.read_text()) == {'auroc': 0.75}
    assert [p.name for p in tmp_path.iterdir()] == ['report.json']


def test_failed_json_write_keeps_the_old_file(tmp_path):
    path = tmp_path / 'report.json'
    atomic_write_json(path, {'auroc': 0.5})
    with pytest.raises(TypeError):
        atomic_write_json(path, {'auroc': object()})
    assert json.loads(path.read_text()) == {'auroc': 0.5}
    assert [p.name for p in tmp_path.iterdir()] == ['report.json']


def test_directory_appears_only_when_complete(tmp_path):
    final = tmp_path / 'dataset'
    with pytest.raises(KeyboardInterrupt):
        with atomic_directory(final) as tmp:
            (tmp / 'a.png').write_bytes(b'x')
            assert not final.exists()
            raise KeyboardInterrupt
    assert list(tmp_path.iterdir()) == []
    with atomic_directory(final) as tmp:
        (tmp / 'a.png').write_bytes(b'x')
    assert (final / 'a.png').read_bytes() == b'x'
    assert [p.name for p in tmp_path.iterdir()] == ['dataset']


def test_existing_directory_needs_overwrite(tmp_path):
    final = tmp_path / 'dataset'
    final.mkdir()
    (final / 'old').write_text('old')
    with pytest.raises(OutputExistsError, match='--overwrite'):
        with atomic_directory(final):
            pass
    with atomic_directory(final, overwrite=True) as tmp:
        (tmp / 'new').write_text('new')
    assert sorted(p.name for p in final.iterdir()) == ['new']


def test_unwritable_destination_is_one_clear_error(tmp_path):
    blocker = tmp_path / 'a_file'
    blocker.write_text('')
    with pytest.raises(AnomalyPerceptionError, match='Cannot create the folder'):
        atomic_write_json(blocker / 'sub' / 'report.json', {})


def test_results_get_normal_permissions(tmp_path):
    import os
    import stat
    mask = os.umask(0)
    os.umask(mask)
    atomic_write_json(tmp_path / 'r.json', {})
    with atomic_directory(tmp_path / 'd') as tmp:
        (tmp / 'x').write_text('x')
    # Not tempfile's private 0600/0700: what open() and mkdir() would give.
    assert stat.S_IMODE((tmp_path / 'r.json').stat().st_mode) == 0o666 & ~mask
    assert stat.S_IMODE((tmp_path / 'd').stat().st_mode) == 0o777 & ~mask

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

"""The ament lint rules, checked here with the pip-installable tools.

ament_flake8 / ament_pep257 / ament_copyright only exist in a ROS 2
install; these tests apply the same configuration (``setup.cfg``) with
flake8, pydocstyle and a header check, so style problems show up in
``make test`` before they show up in ``colcon test`` on a robot.
"""

from pathlib import Path
import subprocess
import sys

import pytest

ROOT = Path(__file__).resolve().parents[1]
SOURCES = ['anomaly_perception', 'test', 'benchmarks', 'launch', 'setup.py']
# The Apache-2.0 header this very file starts with (13 comment lines).
HEADER = ''.join(Path(__file__).read_text().splitlines(keepends=True)[:13])


def _python_files():
    for name in SOURCES:
        path = ROOT / name
        yield from ([path] if path.is_file() else sorted(path.rglob('*.py')))


@pytest.mark.linter
def test_flake8_with_ament_configuration():
    pytest.importorskip('flake8')
    out = subprocess.run([sys.executable, '-m', 'flake8', *SOURCES], cwd=ROOT,
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr


@pytest.mark.linter
def test_docstrings_with_ament_pep257_rules():
    pytest.importorskip('pydocstyle')
    out = subprocess.run([sys.executable, '-m', 'pydocstyle', *SOURCES], cwd=ROOT,
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr


@pytest.mark.linter
def test_every_python_file_has_the_license_header():
    missing = [str(p.relative_to(ROOT)) for p in _python_files()
               if not p.read_text().startswith(HEADER)]
    assert not missing, f'files without the Apache-2.0 header: {missing}'

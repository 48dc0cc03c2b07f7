"""The ament lint rules, checked here with the pip-installable tools.

ament_flake8 / ament_pep257 / ament_copyright only exist in a ROS 2
install; these tests apply the same configuration (``setup.cfg``) with
flake8, pydocstyle and a header check, so style problems show up in
``make test`` before they show up in ``colcon test`` on a robot.
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

import ast
from pathlib import Path
import subprocess
import sys

import pytest

ROOT = Path(__file__).resolve().parents[1]
SOURCES = ['anomaly_perception', 'test', 'benchmarks', 'launch', 'setup.py']
_OWN = Path(__file__).read_text().splitlines(keepends=True)
_START = next(i for i, line in enumerate(_OWN) if line.startswith('# Copyright'))
# The Apache-2.0 header this very file carries after its docstring (13 comment lines).
HEADER = ''.join(_OWN[_START:_START + 13])


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


def _after_the_docstring(path):
    """Return a file's text after its module docstring (None: it does not open with one)."""
    text = path.read_text()
    body = ast.parse(text).body
    if not (text.startswith('"""') and body and isinstance(body[0], ast.Expr)
            and isinstance(getattr(body[0], 'value', None), ast.Constant)):
        return None
    return ''.join(text.splitlines(keepends=True)[body[0].end_lineno:]).lstrip('\n')


@pytest.mark.linter
def test_every_python_file_opens_with_its_docstring_then_the_license_header():
    # What a file is comes first; the full Apache-2.0 text follows, which ament_copyright
    # (Humble 0.12, Jazzy 0.17) takes as the file's first comment block. A two-line SPDX
    # header would not do: ament_copyright does not read SPDX identifiers.
    no_docstring = [str(p.relative_to(ROOT)) for p in _python_files()
                    if _after_the_docstring(p) is None]
    assert not no_docstring, f'files that do not open with their docstring: {no_docstring}'
    missing = [str(p.relative_to(ROOT)) for p in _python_files()
               if not _after_the_docstring(p).startswith(HEADER)]
    assert not missing, f'files without the Apache-2.0 header after the docstring: {missing}'


def test_the_header_check_fails_without_the_header(tmp_path):
    headerless = tmp_path / 'm.py'
    headerless.write_text('"""A module."""\n\nimport os\n')
    assert not _after_the_docstring(headerless).startswith(HEADER)
    header_first = tmp_path / 'h.py'
    header_first.write_text(HEADER + '\n"""A module."""\n')
    assert _after_the_docstring(header_first) is None

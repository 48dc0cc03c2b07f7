"""The import contract: every import points down, and the check itself can fail.

``.importlinter`` lists the layers (``make lint`` runs the same check). The
contract is checked here on the package as it is, then on copies of it with
a deliberate upward import and a deliberate cycle, which must break it, so
a contract that checks nothing cannot pass. Modules loaded by name
(``importlib``) are invisible to any import graph, so the package may load
none of its own that way.
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
import shutil
import subprocess
import sys

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / 'anomaly_perception'
LINT_IMPORTS = Path(sys.executable).with_name('lint-imports')

pytestmark = pytest.mark.skipif(not LINT_IMPORTS.exists(),
                                reason='import-linter is not installed (make setup installs it)')


def _lint(root):
    """Run lint-imports on the package under ``root``; return (exit code, output)."""
    out = subprocess.run([str(LINT_IMPORTS), '--config', str(ROOT / '.importlinter'),
                          '--no-cache'], cwd=root, capture_output=True, text=True,
                         env={'PYTHONPATH': str(root), 'PATH': '/usr/bin:/bin'})
    return out.returncode, out.stdout + out.stderr


def _copy(tmp_path):
    shutil.copytree(PACKAGE, tmp_path / 'anomaly_perception',
                    ignore=shutil.ignore_patterns('__pycache__'))
    return tmp_path / 'anomaly_perception'


def _append(path, line):
    path.write_text(path.read_text() + '\n' + line + '\n')


def test_the_package_keeps_its_import_contract():
    code, out = _lint(ROOT)
    assert code == 0, out
    assert 'Contracts: 4 kept, 0 broken.' in out


@pytest.mark.parametrize('module, line, broken', [
    # io is a foundation: importing the branch registry from it points up four layers.
    ('io/files.py', 'from ..branches import registry  # noqa',
     'anomaly_perception.io.files -> anomaly_perception.branches.registry'),
    # a branch importing a branch that builds on it
    ('branches/pixel/stream.py', 'from ..instance import stream  # noqa',
     'anomaly_perception.branches.pixel is not allowed to import'),
    # lazily, inside a function, is still an import
    ('metrics/plots.py', 'def _late():\n    from ..replay import engine  # noqa\n    return 1',
     'anomaly_perception.metrics is not allowed to import'),
    # the cycle the synthesis branch had: analysis and detector importing each other
    ('branches/synthesis/analysis.py', 'from . import detector  # noqa',
     'No cycles between the modules of any one package BROKEN'),
    # a node that would load Ray on a robot, directly or through the fleet
    ('nodes/frame_anomaly_node.py', 'def _late():\n    import ray  # noqa\n    return 1',
     "A robot does not import the fleet's engine: the nodes never reach Ray BROKEN"),
    ('nodes/pixel_anomaly_node.py', 'from ..fleet import pool  # noqa',
     "A robot does not import the fleet's engine: the nodes never reach Ray BROKEN"),
])
def test_the_contract_breaks_on_a_deliberate_violation(tmp_path, module, line, broken):
    copy = _copy(tmp_path)
    _append(copy / module, line)
    code, out = _lint(tmp_path)
    assert code != 0 and broken in out, out


def _loads_by_name(path):
    """Return the lines calling importlib.import_module / __import__ (what no graph sees)."""
    calls = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Call):
            fn = node.func
            name = fn.attr if isinstance(fn, ast.Attribute) else getattr(fn, 'id', '')
            if name in ('import_module', '__import__'):
                calls.append(node.lineno)
    return calls


def test_no_module_of_the_package_is_loaded_by_name():
    # The one exception: the nodes load ROS 2 message packages (not ours) by type name.
    allowed = {PACKAGE / 'nodes' / 'rclpy_messages.py'}
    found = {str(p.relative_to(ROOT)): _loads_by_name(p) for p in sorted(PACKAGE.rglob('*.py'))
             if p not in allowed and _loads_by_name(p)}
    assert not found, f'modules loaded by name, hidden from the import contract: {found}'


def test_the_name_check_sees_a_load_by_name(tmp_path):
    module = tmp_path / 'm.py'
    module.write_text('import importlib\n\n\ndef f():\n    return importlib.import_module("x")\n')
    assert _loads_by_name(module) == [5]

"""The ament_python package: manifest, installed layout, imports without ROS 2."""

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

import os
from pathlib import Path
import shutil
import subprocess
import sys

from catkin_pkg.package import parse_package

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = 'anomaly_perception'


def test_package_xml_is_valid_format_3():
    pkg = parse_package(ROOT)
    pkg.validate()
    assert pkg.package_format == 3
    assert pkg.name == PACKAGE
    assert pkg.get_build_type() == 'ament_python'
    exec_deps = {d.name for d in pkg.exec_depends}
    assert {'rclpy', 'sensor_msgs', 'std_msgs', 'vision_msgs', 'visualization_msgs',
            'diagnostic_msgs', 'launch', 'launch_ros'} <= exec_deps
    test_deps = {d.name for d in pkg.test_depends}
    assert {'ament_copyright', 'ament_flake8', 'ament_pep257', 'python3-pytest'} <= test_deps
    assert list(pkg.licenses) == ['Apache-2.0']


def test_versions_agree():
    import anomaly_perception
    assert parse_package(ROOT).version == anomaly_perception.__version__


def test_install_layout_in_a_temporary_prefix(tmp_path):
    """What colcon installs: ament index marker, package.xml, launch/config/models."""
    src = tmp_path / 'src'
    src.mkdir()
    for name in ('setup.py', 'setup.cfg', 'package.xml', 'README.md', 'requirements.txt',
                 'LICENSE'):
        shutil.copy(ROOT / name, src / name)
    for name in ('resource', PACKAGE, 'launch', 'config', 'models'):
        shutil.copytree(ROOT / name, src / name,
                        ignore=shutil.ignore_patterns('__pycache__', '*.pyc'))
    prefix = tmp_path / 'install'
    env = {**os.environ, 'PIP_DISABLE_PIP_VERSION_CHECK': '1'}
    subprocess.run(
        [sys.executable, '-m', 'pip', 'install', '--no-deps', '--no-build-isolation',
         '--ignore-installed',  # never touch the environment running the tests
         '--no-index', '--quiet', '--prefix', str(prefix), str(src)],
        check=True, env=env, cwd=tmp_path)
    share = prefix / 'share'
    assert (share / 'ament_index' / 'resource_index' / 'packages' / PACKAGE).is_file()
    assert (share / PACKAGE / 'package.xml').read_text() == (ROOT / 'package.xml').read_text()
    for folder in ('launch', 'config', 'models'):
        installed = share / PACKAGE / folder
        assert installed.is_dir(), folder
        # Recursively: every file of the source folder is installed.
        expected = {p.relative_to(ROOT / folder) for p in (ROOT / folder).rglob('*')
                    if p.is_file() and not p.name.startswith('.')}
        got = {p.relative_to(installed) for p in installed.rglob('*') if p.is_file()}
        assert expected == got, folder
    assert (prefix / 'bin' / 'anomaly-perception').is_file()


_NO_ROS = r"""
import importlib, pkgutil, sys

class _Block:
    def find_spec(self, name, path=None, target=None):
        if name.split('.')[0] in ('rclpy', 'rosidl_runtime_py', 'sensor_msgs', 'launch_ros'):
            raise ImportError('ROS 2 is not available: ' + name)
        return None

sys.meta_path.insert(0, _Block())
import anomaly_perception
for mod in pkgutil.walk_packages(anomaly_perception.__path__, 'anomaly_perception.'):
    if mod.name.startswith('anomaly_perception.nodes.') or mod.name.endswith('__main__'):
        continue
    importlib.import_module(mod.name)
print('imported', len([m for m in sys.modules if m.startswith('anomaly_perception')]))
"""


def test_everything_outside_nodes_imports_without_ros():
    out = subprocess.run([sys.executable, '-c', _NO_ROS], capture_output=True, text=True,
                         cwd=ROOT)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith('imported')


def test_console_script_is_declared():
    text = (ROOT / 'setup.py').read_text()
    assert "'anomaly-perception = anomaly_perception.cli:main'" in text

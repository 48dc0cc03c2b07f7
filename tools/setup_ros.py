"""Put ROS 2 Jazzy into the project's virtual environment (development and CI).

Run by ``make setup`` with the environment's own Python::

    .venv/bin/python tools/setup_ros.py

1. installs the ROS 2 Jazzy wheels of ``tools/ros-jazzy-requirements.txt``
   (rclpy, the message packages, Fast DDS and the rosidl build tools);
2. builds the ``vision_msgs`` message package, which has no wheel, from the
   vision_msgs 4.1.1 definitions in ``anomaly_perception/io/msgdefs.py``
   with rosidl, CMake and a C/C++ compiler, and installs it into the
   environment (about 40 s on two cores). The build is keyed on its inputs
   and skipped while they are unchanged and ``vision_msgs`` imports.

The wheels exist for CPython 3.10-3.13 on x86_64 Linux only; elsewhere, or
with ``ANOMALY_PERCEPTION_SKIP_ROS=1``, this prints why and does nothing (the
tests that need ROS 2 then skip and say why). On a robot none of this runs:
the package uses the system's rclpy and ``ros-<distro>-vision-msgs``.
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

import argparse
import hashlib
import json
import os
from pathlib import Path
import platform
import shutil
import subprocess
import sys
import tempfile
import time

ROOT = Path(__file__).resolve().parents[1]
REQUIREMENTS = ROOT / 'tools' / 'ros-jazzy-requirements.txt'
BUILD_KEY_FILE = 'anomaly_perception_build.json'

PACKAGE_XML = """<?xml version="1.0"?>
<package format="3">
  <name>vision_msgs</name>
  <version>{version}</version>
  <description>vision_msgs {version} messages, built from anomaly_perception's
    definitions for a development environment without a vision_msgs package.</description>
  <maintainer email="maintainers@anomaly-perception.invalid">anomaly_perception</maintainer>
  <license>Apache-2.0</license>
  <buildtool_depend>ament_cmake</buildtool_depend>
  <buildtool_depend>rosidl_default_generators</buildtool_depend>
  <depend>std_msgs</depend>
  <depend>geometry_msgs</depend>
  <exec_depend>rosidl_default_runtime</exec_depend>
  <member_of_group>rosidl_interface_packages</member_of_group>
  <export>
    <build_type>ament_cmake</build_type>
  </export>
</package>
"""

# The wheels' exported rosidl_generator_py targets name the include folders
# of the machine they were built on; point them at this environment's Python
# and numpy headers before CMake checks that those folders exist.
CMAKELISTS = """cmake_minimum_required(VERSION 3.16)
project(vision_msgs)
find_package(ament_cmake REQUIRED)
find_package(std_msgs REQUIRED)
find_package(geometry_msgs REQUIRED)
find_package(rosidl_default_generators REQUIRED)
rosidl_generate_interfaces(${{PROJECT_NAME}}
  {msg_files}
  DEPENDENCIES std_msgs geometry_msgs)
ament_package()
get_directory_property(_imported IMPORTED_TARGETS)
foreach(_target IN LISTS _imported)
  if(_target MATCHES "__rosidl_generator_py$")
    set_target_properties(${{_target}} PROPERTIES
      INTERFACE_INCLUDE_DIRECTORIES "${{Python3_INCLUDE_DIRS}};${{Python3_NumPy_INCLUDE_DIRS}}")
  endif()
endforeach()
"""

INSTALL_HINT = {
    'cmake': 'sudo apt-get install cmake   (Debian/Ubuntu; or: pip install cmake)',
    'cc': 'sudo apt-get install build-essential   (Debian/Ubuntu: gcc and g++)',
    'c++': 'sudo apt-get install build-essential   (Debian/Ubuntu: gcc and g++)',
}


class SetupError(Exception):
    """A step failed; the message says what to do."""


def say(text):
    print(f'[setup_ros] {text}', flush=True)


def supported_platform():
    """Return None where the ROS 2 Jazzy wheels exist, else the reason they do not."""
    if os.environ.get('ANOMALY_PERCEPTION_SKIP_ROS', '') not in ('', '0'):
        return 'ANOMALY_PERCEPTION_SKIP_ROS is set'
    if sys.platform != 'linux' or platform.machine() != 'x86_64':
        return (f'the ROS 2 Jazzy wheels exist for x86_64 Linux only (this is '
                f'{sys.platform} {platform.machine()})')
    if not (3, 10) <= sys.version_info[:2] <= (3, 13):
        return (f'the ROS 2 Jazzy wheels exist for CPython 3.10-3.13 only (this is '
                f'{platform.python_version()})')
    return None


def install_wheels():
    say(f'installing the ROS 2 Jazzy wheels of {REQUIREMENTS.relative_to(ROOT)}')
    start = time.monotonic()
    result = subprocess.run([sys.executable, '-m', 'pip', 'install', '--quiet', '-r',
                             str(REQUIREMENTS)], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    if result.returncode:
        lines = [ln for ln in result.stdout.splitlines() if 'is ignored' not in ln]
        raise SetupError('pip could not install the ROS 2 Jazzy wheels:\n'
                         + '\n'.join(lines[-20:]))
    say(f'wheels ready ({time.monotonic() - start:.0f} s)')


def vision_msgs_definitions():
    """``({name: text}, version)`` from the project's message definitions."""
    sys.path.insert(0, str(ROOT))
    try:
        from anomaly_perception.io.msgdefs import VISION_MSGS
        from anomaly_perception.io.msgdefs import VISION_MSGS_VERSION
    finally:
        sys.path.pop(0)
    return VISION_MSGS, VISION_MSGS_VERSION


def build_key(definitions, version):
    digest = hashlib.sha256()
    for part in (json.dumps(definitions, sort_keys=True), version, Path(__file__).read_text(),
                 REQUIREMENTS.read_text(), sys.version):
        digest.update(part.encode())
    return digest.hexdigest()


def vision_msgs_imports():
    probe = subprocess.run([sys.executable, '-c',
                            'import vision_msgs.msg; vision_msgs.msg.Classification()'],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return probe.returncode == 0


def find_tools():
    missing = {}
    found = {}
    for tool, names in (('cmake', ['cmake']), ('cc', ['cc', 'gcc', 'clang']),
                        ('c++', ['c++', 'g++', 'clang++'])):
        path = next((shutil.which(n) for n in names if shutil.which(n)), None)
        if path is None:
            missing[tool] = INSTALL_HINT[tool]
        found[tool] = path
    if missing:
        hints = '\n'.join(f'  {tool} not found; install it with: {hint}'
                          for tool, hint in missing.items())
        raise SetupError('building vision_msgs needs CMake and a C/C++ compiler:\n' + hints
                         + '\n(or set ANOMALY_PERCEPTION_SKIP_ROS=1 to set up without ROS 2;'
                         ' the node tests then skip)')
    return found


def write_package(src, definitions, version):
    (src / 'msg').mkdir(parents=True)
    files = []
    for name, text in sorted(definitions.items()):
        msg_name = name.rsplit('/', 1)[1]
        (src / 'msg' / f'{msg_name}.msg').write_text(text.strip() + '\n')
        files.append(f'msg/{msg_name}.msg')
    (src / 'package.xml').write_text(PACKAGE_XML.format(version=version))
    (src / 'CMakeLists.txt').write_text(CMAKELISTS.format(msg_files='\n  '.join(files)))


def build_vision_msgs(prefix, force=False):
    definitions, version = vision_msgs_definitions()
    key = build_key(definitions, version)
    key_file = prefix / 'share' / 'vision_msgs' / BUILD_KEY_FILE
    if not force and key_file.is_file() and vision_msgs_imports():
        try:
            if json.loads(key_file.read_text()).get('key') == key:
                say(f'vision_msgs {version} is up to date')
                return
        except ValueError:
            pass
    tools = find_tools()
    say(f'building vision_msgs {version} ({len(definitions)} messages) with rosidl '
        f'into {prefix.name}/ (about a minute)')
    start = time.monotonic()
    log_path = prefix / 'vision_msgs-build.log'
    env = dict(os.environ)
    env['PATH'] = f'{prefix / "bin"}{os.pathsep}{env.get("PATH", "")}'
    env['AMENT_PREFIX_PATH'] = str(prefix)
    env['CC'], env['CXX'] = tools['cc'], tools['c++']
    with tempfile.TemporaryDirectory(prefix='vision_msgs-') as tmp, \
            open(log_path, 'w') as log:
        src, build = Path(tmp) / 'src', Path(tmp) / 'build'
        write_package(src, definitions, version)
        steps = [
            ('configure', [tools['cmake'], '-S', str(src), '-B', str(build),
                           f'-DCMAKE_INSTALL_PREFIX={prefix}', f'-DCMAKE_PREFIX_PATH={prefix}',
                           f'-DPython3_EXECUTABLE={sys.executable}',
                           '-DCMAKE_BUILD_TYPE=Release', '-DBUILD_TESTING=OFF']),
            ('compile', [tools['cmake'], '--build', str(build), '--parallel',
                         str(os.cpu_count() or 2)]),
            ('install', [tools['cmake'], '--install', str(build)]),
        ]
        for name, command in steps:
            step_start = time.monotonic()
            log.write(f'$ {" ".join(command)}\n')
            log.flush()
            result = subprocess.run(command, stdout=log, stderr=subprocess.STDOUT, env=env)
            if result.returncode:
                log.close()
                tail = log_path.read_text().splitlines()[-25:]
                raise SetupError(f'vision_msgs {name} failed (full log: {log_path}):\n'
                                 + '\n'.join(tail))
            say(f'  {name}: {time.monotonic() - step_start:.0f} s')
    if not vision_msgs_imports():
        raise SetupError(f'vision_msgs was built but does not import (log: {log_path}).')
    key_file.write_text(json.dumps({'key': key, 'version': version}) + '\n')
    say(f'vision_msgs {version} built and installed ({time.monotonic() - start:.0f} s)')


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--force', action='store_true', help='rebuild vision_msgs')
    args = parser.parse_args(argv)
    reason = supported_platform()
    if reason:
        say(f'skipping ROS 2: {reason}. The nodes still work with a system ROS 2; the '
            'tests that need rclpy skip and say why.')
        return 0
    if sys.prefix == sys.base_prefix:
        say("run this with a virtual environment's Python (make setup does): it installs "
            'into that environment.')
        return 2
    try:
        install_wheels()
        build_vision_msgs(Path(sys.prefix), force=args.force)
    except SetupError as err:
        print(f'[setup_ros] error: {err}', file=sys.stderr, flush=True)
        return 1
    return 0


if __name__ == '__main__':
    sys.exit(main())

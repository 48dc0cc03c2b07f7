"""ament_flake8, as ``colcon test`` runs it, with the package's flake8 configuration.

setup.cfg's [flake8] section is ament's configuration plus one allowance:
the subpackage ``anomaly_perception.io`` (always imported relatively or fully
qualified) is not a shadowed builtin. make setup installs ament_flake8 from
the ros-jazzy wheels; elsewhere this skips.
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

import pytest

ament_flake8 = pytest.importorskip(
    'ament_flake8.main', reason='ament_flake8 is not installed (make setup installs it with '
    'the ROS 2 Jazzy wheels; on a robot: ros-<distro>-ament-flake8)')


@pytest.mark.flake8
@pytest.mark.linter
def test_flake8():
    rc, errors = ament_flake8.main_with_errors(argv=['--config', 'setup.cfg'])
    assert rc == 0, 'Found %d code style errors / warnings:\n' % len(errors) + '\n'.join(errors)

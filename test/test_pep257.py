"""ament_pep257, as ``colcon test`` runs it, with the package's docstring convention.

The package writes Google-style sections (``Args:``, ``Raises:``) with the
summary on the first line; ament's default selection expects the summary on
the second line and numpy-style underlined sections, so the convention
declared in setup.cfg ([pydocstyle]) is passed explicitly. make setup
installs ament_pep257 from the ros-jazzy wheels; elsewhere this skips.
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

ament_pep257 = pytest.importorskip(
    'ament_pep257.main', reason='ament_pep257 is not installed (make setup installs it with '
    'the ROS 2 Jazzy wheels; on a robot: ros-<distro>-ament-pep257)')


@pytest.mark.linter
@pytest.mark.pep257
def test_pep257():
    rc = ament_pep257.main(argv=['.', 'test', '--convention', 'pep257', '--add-ignore',
                                 'D100,D101,D102,D103,D104,D105,D106,D107'])
    assert rc == 0, 'Found code style errors / warnings'

"""Build script for the ``anomaly_perception`` ament_python package.

The same file serves ``colcon build`` on a robot and ``pip install`` on a
machine without ROS 2.
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

import os
from pathlib import Path

from setuptools import find_packages
from setuptools import setup

PACKAGE_NAME = 'anomaly_perception'
HERE = Path(__file__).resolve().parent


def _requirements():
    """Read the pip requirements, skipping comments and blank lines."""
    lines = (HERE / 'requirements.txt').read_text().splitlines()
    return [line.strip() for line in lines if line.strip() and not line.startswith('#')]


def _tree(folder):
    """List ``(install_dir, [files])`` for every file below ``folder``, recursively."""
    entries = []
    for root, dirs, files in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if not d.startswith(('.', '__pycache__')))
        kept = sorted(os.path.join(root, f) for f in files if not f.startswith('.'))
        if kept:
            entries.append((os.path.join('share', PACKAGE_NAME, root), kept))
    return entries


setup(
    name=PACKAGE_NAME,
    version='0.1.0',
    description='Anomaly perception for mobile robots, as a ROS 2 package.',
    long_description=(HERE / 'README.md').read_text(encoding='utf-8'),
    long_description_content_type='text/markdown',
    license='Apache-2.0',
    maintainer='anomaly_perception maintainers',
    maintainer_email='maintainers@anomaly-perception.invalid',
    python_requires='>=3.10',
    packages=find_packages(exclude=['test', 'test.*', 'benchmarks']),
    package_data={PACKAGE_NAME: ['py.typed']},
    data_files=[
        ('share/ament_index/resource_index/packages', ['resource/' + PACKAGE_NAME]),
        ('share/' + PACKAGE_NAME, ['package.xml']),
        *_tree('launch'),
        *_tree('config'),
        *_tree('models'),
    ],
    install_requires=['setuptools', *_requirements()],
    extras_require={
        'test': [
            'pytest>=7',
            'pytest-timeout>=2',
            'scikit-learn>=1.1',
            'catkin_pkg>=0.5',
            'flake8>=6',
            'flake8-blind-except',
            'flake8-builtins',
            'flake8-class-newline',
            'flake8-comprehensions',
            'flake8-deprecated',
            'flake8-import-order',
            'flake8-quotes',
            'import-linter>=2.17',
            'pydocstyle>=6',
        ],
        # evaluate bags: many bags as Ray tasks; the nodes never import it.
        'fleet': ['ray>=2.9'],
        'rba': ['transformers>=4.30'],
        # The peer row of experiment pixel-place only (anomalib's DRAEM); nothing else uses it.
        'peer': ['anomalib>=2.0'],
        'tensorrt': ['tensorrt>=10', 'cuda-python>=12'],
    },
    zip_safe=True,
    entry_points={
        'console_scripts': [
            'anomaly-perception = anomaly_perception.cli:main',
            'frame_anomaly_node = anomaly_perception.nodes.frame_anomaly_node:main',
            'pixel_anomaly_node = anomaly_perception.nodes.pixel_anomaly_node:main',
            'instance_anomaly_node = anomaly_perception.nodes.instance_anomaly_node:main',
            'hazard_monitor = anomaly_perception.nodes.hazard_monitor_node:main',
        ],
    },
)

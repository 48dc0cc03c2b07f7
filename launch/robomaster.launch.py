"""Frame, pixel and instance anomaly detection next to a DJI Robomaster (robomaster_ros driver).

The driver publishes ``/<name>/camera/image_color`` (bgr8, 640x360 by
default, frame_id ``<name>/camera_optical_link``, reliable, depth 1) and
``/<name>/camera/camera_info``. This starts ``frame_anomaly_node``,
(``pixel:=true``, the default) ``pixel_anomaly_node`` and (``instance:=true``,
the default, with the pixel node) ``instance_anomaly_node`` in the robot's
namespace, listening there; the instance node pairs the camera's images
with the pixel node's ``pixel_anomaly/anomaly_map``.

With ``place:=DIR`` (a directory written by ``train place``) the frame and
pixel nodes run the place's models (the instance node too, if the place
has a tuned promptable model and ``instance_model`` is empty), and
``hazard_monitor`` fuses their
``~/score`` into one flag, ``<ns>/hazard_monitor/hazard``.

    ros2 launch anomaly_perception robomaster.launch.py name:=robomaster
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

from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument
from launch.actions import SetEnvironmentVariable
from launch.conditions import IfCondition
from launch.conditions import LaunchConfigurationNotEquals
from launch.substitutions import AndSubstitution
from launch.substitutions import LaunchConfiguration
from launch.substitutions import PathJoinSubstitution
from launch.substitutions import PythonExpression
from launch_ros.actions import Node
from launch_ros.substitutions import FindPackageShare

DDS_PROFILE = 'fastdds_camera_profile.xml'
# Read by Fast DDS 2 (Humble, Jazzy) and Fast DDS 3 (Kilted and later).
DDS_PROFILE_VARIABLES = ('FASTRTPS_DEFAULT_PROFILES_FILE', 'FASTDDS_DEFAULT_PROFILES_FILE')


def model_of(branch, model):
    """Return the place's ``branch`` model with ``place:=DIR``, else the ``model`` argument."""
    place = LaunchConfiguration('place')
    return PythonExpression(["'", place, f"/{branch}' if '", place, "' else '", model, "'"])


def instance_model_of(model):
    """Return ``instance_model`` if given, else the place's tuned promptable model if any, else ''.

    An empty ``model_dir`` makes the instance node run its baseline (no
    promptable model).
    """
    place = LaunchConfiguration('place')
    return PythonExpression(["'", model, "' or ('", place, "/instance' if '", place,
                             "' and __import__('os').path.isdir('", place, "/instance') "
                             "else '')"])


def generate_launch_description():
    name = LaunchConfiguration('name')
    share = FindPackageShare('anomaly_perception')
    pixel_params = PathJoinSubstitution([share, 'config', 'pixel_anomaly.yaml'])
    instance_params = PathJoinSubstitution([share, 'config', 'instance_anomaly.yaml'])
    params = PathJoinSubstitution([share, 'config', 'frame_anomaly.yaml'])
    return LaunchDescription([
        DeclareLaunchArgument('name', default_value='robomaster',
                              description='robot name = namespace of the driver'),
        DeclareLaunchArgument('model', default_value='',
                              description='frame model directory (empty: the shipped one)'),
        DeclareLaunchArgument('backend', default_value='auto',
                              description='auto, torch, onnxruntime or tensorrt'),
        DeclareLaunchArgument('pixel', default_value='true',
                              description='also start pixel_anomaly_node (per-pixel '
                                          'anomaly maps)'),
        DeclareLaunchArgument('pixel_model', default_value='',
                              description='pixel model directory (empty: the shipped one)'),
        DeclareLaunchArgument('instance', default_value='true',
                              description='also start instance_anomaly_node (UGainS instances '
                                          'on keyframes, hazards on the floor; needs '
                                          'pixel:=true)'),
        DeclareLaunchArgument('instance_model', default_value='',
                              description='promptable segmenter directory, e.g. the '
                                          'shipped models/instance_sam_small (empty or '
                                          'components: none, the regions of the '
                                          'thresholded map; the default)'),
        DeclareLaunchArgument('place', default_value='',
                              description='place directory (train place): the frame and pixel '
                                          'nodes run its models, and hazard_monitor fuses them '
                                          'into one flag (needs pixel:=true); empty: no place'),
        DeclareLaunchArgument('use_sim_time', default_value='false'),
        DeclareLaunchArgument('autostart', default_value='true',
                              description='configure and activate at start (false: leave the '
                                          'managed node to a lifecycle manager)'),
        DeclareLaunchArgument(
            'dds_profile', default_value=PathJoinSubstitution([share, 'config', DDS_PROFILE]),
            description='Fast DDS profile for this launch (shared memory sized for camera '
                        "frames); '' keeps the environment's"),
        *[SetEnvironmentVariable(variable, LaunchConfiguration('dds_profile'),
                                 condition=LaunchConfigurationNotEquals('dds_profile', ''))
          for variable in DDS_PROFILE_VARIABLES],
        Node(
            package='anomaly_perception', executable='frame_anomaly_node',
            name='frame_anomaly', namespace=name, output='screen',
            parameters=[params, {
                'model_dir': model_of('frame', LaunchConfiguration('model')),
                'backend': LaunchConfiguration('backend'),
                'use_sim_time': LaunchConfiguration('use_sim_time'),
                'autostart': LaunchConfiguration('autostart'),
                'qos_reliability': 'reliable',
            }],
            remappings=[('image', 'camera/image_color')],
        ),
        Node(
            package='anomaly_perception', executable='pixel_anomaly_node',
            name='pixel_anomaly', namespace=name, output='screen',
            parameters=[pixel_params, {
                'model_dir': model_of('pixel', LaunchConfiguration('pixel_model')),
                'backend': LaunchConfiguration('backend'),
                'use_sim_time': LaunchConfiguration('use_sim_time'),
                'autostart': LaunchConfiguration('autostart'),
                'qos_reliability': 'reliable',
            }],
            remappings=[('image', 'camera/image_color')],
            condition=IfCondition(LaunchConfiguration('pixel')),
        ),
        Node(
            package='anomaly_perception', executable='instance_anomaly_node',
            name='instance_anomaly', namespace=name, output='screen',
            parameters=[instance_params, {
                'model_dir': instance_model_of(LaunchConfiguration('instance_model')),
                'pixel_model_dir': model_of('pixel', LaunchConfiguration('pixel_model')),
                'backend': LaunchConfiguration('backend'),
                'use_sim_time': LaunchConfiguration('use_sim_time'),
                'autostart': LaunchConfiguration('autostart'),
                'qos_reliability': 'reliable',
            }],
            remappings=[('image', 'camera/image_color'),
                        ('anomaly_map', 'pixel_anomaly/anomaly_map'),
                        ('camera_info', 'camera/camera_info')],
            condition=IfCondition(AndSubstitution(LaunchConfiguration('pixel'),
                                                  LaunchConfiguration('instance'))),
        ),
        Node(
            package='anomaly_perception', executable='hazard_monitor',
            name='hazard_monitor', namespace=name, output='screen',
            parameters=[{
                'place': LaunchConfiguration('place'),
                'use_sim_time': LaunchConfiguration('use_sim_time'),
                'autostart': LaunchConfiguration('autostart'),
            }],
            remappings=[('frame/score', 'frame_anomaly/score'),
                        ('pixel/score', 'pixel_anomaly/score')],
            condition=IfCondition(AndSubstitution(
                PythonExpression(["'", LaunchConfiguration('place'), "' != ''"]),
                LaunchConfiguration('pixel'))),
        ),
    ])

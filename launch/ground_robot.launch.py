"""Frame, pixel and instance anomaly detection on any robot's camera topic.

Give the camera topic as an argument, for instance:

With ``place:=DIR`` (a directory written by ``train place``) the frame and
pixel nodes run the place's models (the instance node too, if the place
has a tuned promptable model and ``instance_model`` is empty), and
``hazard_monitor`` fuses their
``~/score`` into one flag, ``<ns>/hazard_monitor/hazard``.

    ros2 launch anomaly_perception ground_robot.launch.py image_topic:=/cam/image_raw \
        camera_info_topic:=/cam/camera_info camera_height_m:=0.45 camera_pitch_deg:=12

The instance node (``instance:=true``, with ``pixel:=true``) places hazards on
the floor from ``camera_info`` and the camera's height and pitch.
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
    share = FindPackageShare('anomaly_perception')
    pixel_params = PathJoinSubstitution([share, 'config', 'pixel_anomaly.yaml'])
    instance_params = PathJoinSubstitution([share, 'config', 'instance_anomaly.yaml'])
    params = PathJoinSubstitution([share, 'config', 'frame_anomaly.yaml'])
    return LaunchDescription([
        DeclareLaunchArgument('image_topic', default_value='/camera/image_raw',
                              description='camera topic (Image, or CompressedImage with '
                                          'input_transport:=compressed)'),
        DeclareLaunchArgument('namespace', default_value='',
                              description='namespace of the node and its outputs'),
        DeclareLaunchArgument('input_transport', default_value='raw',
                              description='raw or compressed'),
        DeclareLaunchArgument('model', default_value=''),
        DeclareLaunchArgument('backend', default_value='auto'),
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
        DeclareLaunchArgument('camera_info_topic', default_value='/camera/camera_info',
                              description="the camera's CameraInfo (places hazards on the "
                                          'floor)'),
        DeclareLaunchArgument('camera_height_m', default_value='0.13',
                              description='camera centre above the floor (m): measure it on '
                                          'your robot'),
        DeclareLaunchArgument('camera_pitch_deg', default_value='7.0',
                              description='downward tilt of the camera (degrees, positive = '
                                          'looking down)'),
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
            name='frame_anomaly', namespace=LaunchConfiguration('namespace'), output='screen',
            parameters=[params, {
                'model_dir': model_of('frame', LaunchConfiguration('model')),
                'backend': LaunchConfiguration('backend'),
                'input_transport': LaunchConfiguration('input_transport'),
                'use_sim_time': LaunchConfiguration('use_sim_time'),
                'autostart': LaunchConfiguration('autostart'),
            }],
            remappings=[('image', LaunchConfiguration('image_topic'))],
        ),
        Node(
            package='anomaly_perception', executable='pixel_anomaly_node',
            name='pixel_anomaly', namespace=LaunchConfiguration('namespace'), output='screen',
            parameters=[pixel_params, {
                'model_dir': model_of('pixel', LaunchConfiguration('pixel_model')),
                'backend': LaunchConfiguration('backend'),
                'input_transport': LaunchConfiguration('input_transport'),
                'use_sim_time': LaunchConfiguration('use_sim_time'),
                'autostart': LaunchConfiguration('autostart'),
            }],
            remappings=[('image', LaunchConfiguration('image_topic'))],
            condition=IfCondition(LaunchConfiguration('pixel')),
        ),
        Node(
            package='anomaly_perception', executable='instance_anomaly_node',
            name='instance_anomaly', namespace=LaunchConfiguration('namespace'), output='screen',
            parameters=[instance_params, {
                'model_dir': instance_model_of(LaunchConfiguration('instance_model')),
                'pixel_model_dir': model_of('pixel', LaunchConfiguration('pixel_model')),
                'backend': LaunchConfiguration('backend'),
                'input_transport': LaunchConfiguration('input_transport'),
                'use_sim_time': LaunchConfiguration('use_sim_time'),
                'autostart': LaunchConfiguration('autostart'),
                'camera_height_m': LaunchConfiguration('camera_height_m'),
                'camera_pitch_deg': LaunchConfiguration('camera_pitch_deg'),
            }],
            remappings=[('image', LaunchConfiguration('image_topic')),
                        ('anomaly_map', 'pixel_anomaly/anomaly_map'),
                        ('camera_info', LaunchConfiguration('camera_info_topic'))],
            condition=IfCondition(AndSubstitution(LaunchConfiguration('pixel'),
                                                  LaunchConfiguration('instance'))),
        ),
        Node(
            package='anomaly_perception', executable='hazard_monitor',
            name='hazard_monitor', namespace=LaunchConfiguration('namespace'), output='screen',
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

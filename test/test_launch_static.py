"""Launch files, parameter files and the rviz config, checked without ROS 2."""

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
import py_compile

from anomaly_perception.branches.frame.config import FrameNodeConfig
from anomaly_perception.branches.frame.messages import output_topics
from anomaly_perception.branches.instance.config import InstanceNodeConfig
from anomaly_perception.branches.instance.messages import output_topics as instance_output_topics
from anomaly_perception.branches.pixel.config import PixelNodeConfig
from anomaly_perception.branches.pixel.messages import output_topics as pixel_output_topics
from anomaly_perception.config import load_config
from anomaly_perception.config import parameter_specs_of
from anomaly_perception.replay.monitor import MONITOR_PARAMETERS
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
LAUNCH_FILES = sorted((ROOT / 'launch').glob('*.launch.py'))
CONFIGS = {'frame_anomaly_node': FrameNodeConfig, 'pixel_anomaly_node': PixelNodeConfig,
           'instance_anomaly_node': InstanceNodeConfig}


def _entry_points():
    tree = ast.parse((ROOT / 'setup.py').read_text())
    scripts = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and ' = ' in node.value \
                and ':' in node.value:
            scripts.append(node.value.split(' = ')[0].strip())
    return set(scripts)


def _node_calls(path):
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and getattr(node.func, 'id', None) == 'Node':
            yield {kw.arg: kw.value for kw in node.keywords}


def test_there_are_the_three_launch_files():
    assert {p.name for p in LAUNCH_FILES} == {'robomaster.launch.py', 'ground_robot.launch.py',
                                              'replay.launch.py'}


@pytest.mark.parametrize('path', LAUNCH_FILES, ids=lambda p: p.name)
def test_launch_file_compiles_and_starts_existing_executables(path):
    py_compile.compile(str(path), doraise=True)
    tree = ast.parse(path.read_text())
    assert any(isinstance(n, ast.FunctionDef) and n.name == 'generate_launch_description'
               for n in tree.body)
    entry_points = _entry_points()
    started = []
    for kwargs in _node_calls(path):
        package = kwargs['package'].value
        executable = kwargs['executable'].value
        if package == 'anomaly_perception':
            assert executable in entry_points, f'{path.name}: {executable} is no entry point'
            started.append(executable)
    assert sorted(started) == ['frame_anomaly_node', 'hazard_monitor', 'instance_anomaly_node',
                               'pixel_anomaly_node']


@pytest.mark.parametrize('path', LAUNCH_FILES, ids=lambda p: p.name)
def test_instance_node_listens_to_the_pixel_nodes_map(path):
    calls = {kw['executable'].value: kw for kw in _node_calls(path)
             if kw['package'].value == 'anomaly_perception'}
    pixel, instance = calls['pixel_anomaly_node'], calls['instance_anomaly_node']
    remaps = {ast.literal_eval(e.elts[0]): e.elts[1] for e in instance['remappings'].elts}
    assert set(remaps) == {'image', 'anomaly_map', 'camera_info'}
    # The same camera as the pixel node, and the pixel node's map in the same namespace.
    pixel_image = next(e.elts[1] for e in pixel['remappings'].elts
                       if ast.literal_eval(e.elts[0]) == 'image')
    assert ast.unparse(remaps['image']) == ast.unparse(pixel_image)
    assert ast.unparse(instance['namespace']) == ast.unparse(pixel['namespace'])
    assert ast.literal_eval(remaps['anomaly_map']) == (
        f"{pixel['name'].value}/anomaly_map")
    # Started only with the pixel node that feeds it.
    condition = ast.unparse(instance['condition'])
    assert "LaunchConfiguration('pixel')" in condition and 'AndSubstitution' in condition


@pytest.mark.parametrize('path', LAUNCH_FILES, ids=lambda p: p.name)
def test_a_place_gives_the_nodes_its_models_and_starts_the_monitor_on_their_scores(path):
    text = path.read_text()
    assert "DeclareLaunchArgument('place', default_value=''" in text
    calls = {kw['executable'].value: kw for kw in _node_calls(path)
             if kw['package'].value == 'anomaly_perception'}
    models = {}
    for name, key in (('frame_anomaly_node', 'model_dir'), ('pixel_anomaly_node', 'model_dir'),
                      ('instance_anomaly_node', 'pixel_model_dir')):
        params = next(item for item in calls[name]['parameters'].elts
                      if isinstance(item, ast.Dict))
        models[name] = ast.unparse(dict(zip([k.value for k in params.keys],
                                            params.values))[key])
    assert models['frame_anomaly_node'] == "model_of('frame', LaunchConfiguration('model'))"
    assert models['pixel_anomaly_node'] == models['instance_anomaly_node'] == \
        "model_of('pixel', LaunchConfiguration('pixel_model'))"
    monitor, frame = calls['hazard_monitor'], calls['frame_anomaly_node']
    assert ast.unparse(monitor['namespace']) == ast.unparse(frame['namespace'])
    remaps = {ast.literal_eval(e.elts[0]): ast.literal_eval(e.elts[1])
              for e in monitor['remappings'].elts}
    assert remaps == {'frame/score': f"{frame['name'].value}/score",
                      'pixel/score': f"{calls['pixel_anomaly_node']['name'].value}/score"}
    condition = ast.unparse(monitor['condition'])
    assert "LaunchConfiguration('place')" in condition and "LaunchConfiguration('pixel')" in \
        condition
    # The expression model_of builds picks the place's model only when a place is given.
    expression = "'{place}/{branch}' if '{place}' else '{model}'"
    assert eval(expression.format(place='/p', branch='pixel', model='')) == '/p/pixel'
    assert eval(expression.format(place='', branch='pixel', model='/m')) == '/m'
    assert 'PythonExpression(["\'", place, f"/{branch}\' if \'", place, "\' else \'", ' \
           'model, "\'"])' in text


def _expression_of(path, function, **values):
    """Return the Python text the ``PythonExpression`` of ``function`` builds, names replaced."""
    tree = ast.parse(path.read_text())
    body = next(n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == function)
    call = next(n for n in ast.walk(body) if isinstance(n, ast.Call)
                and getattr(n.func, 'id', None) == 'PythonExpression')
    return ''.join(values[e.id] if isinstance(e, ast.Name) else e.value
                   for e in call.args[0].elts)


@pytest.mark.parametrize('path', LAUNCH_FILES, ids=lambda p: p.name)
def test_the_instance_node_runs_a_place_s_promptable_model_only_if_it_has_one(path, tmp_path):
    calls = {kw['executable'].value: kw for kw in _node_calls(path)
             if kw['package'].value == 'anomaly_perception'}
    params = next(item for item in calls['instance_anomaly_node']['parameters'].elts
                  if isinstance(item, ast.Dict))
    model = dict(zip([k.value for k in params.keys], params.values))['model_dir']
    assert ast.unparse(model) == "instance_model_of(LaunchConfiguration('instance_model'))"
    place, bare = tmp_path / 'tuned', tmp_path / 'bare'
    (place / 'instance').mkdir(parents=True)
    bare.mkdir()

    def picked(model, place):
        return eval(_expression_of(path, 'instance_model_of', model=model, place=place))
    assert picked('', str(place)) == f'{place}/instance'
    assert picked('/m', str(place)) == '/m'                 # the argument wins
    assert picked('', str(bare)) == ''                      # no tuned model: the baseline
    assert picked('', '') == '' and picked('/m', '') == '/m'


@pytest.mark.parametrize('path', LAUNCH_FILES, ids=lambda p: p.name)
def test_launch_parameters_are_declared_by_the_node(path):
    for kwargs in _node_calls(path):
        if kwargs['package'].value != 'anomaly_perception':
            continue
        if kwargs['executable'].value == 'hazard_monitor':
            declared = {name for name, *_ in MONITOR_PARAMETERS} | {'use_sim_time'}
            keys = {k.value for item in kwargs['parameters'].elts for k in item.keys}
            assert keys <= declared, f'{path.name}: undeclared {keys - declared}'
            continue
        config = CONFIGS[kwargs['executable'].value]
        declared = {name for name, *_ in parameter_specs_of(config)} | {'use_sim_time'}
        for item in kwargs['parameters'].elts:
            if isinstance(item, ast.Dict):
                keys = {k.value for k in item.keys}
                assert keys <= declared, f'{path.name}: undeclared {keys - declared}'
            else:  # a parameter file in the package's config/ folder
                names = [n.value for n in ast.walk(item)
                         if isinstance(n, ast.Constant) and str(n.value).endswith('.yaml')]
                if not names:   # a variable naming the file
                    names = [n.value for n in ast.walk(ast.parse(path.read_text()))
                             if isinstance(n, ast.Constant) and str(n.value).endswith(
                                 f'{kwargs["name"].value}.yaml')]
                assert names, f'{path.name}: unrecognised parameters entry'
                for name in names:
                    file = ROOT / 'config' / name
                    assert file.is_file(), f'{path.name} loads missing config/{name}'
                    load_config(config, file)  # only declared, valid parameters


def test_rviz_config_shows_only_topics_that_exist():
    config = yaml.safe_load((ROOT / 'config' / 'anomaly_perception.rviz').read_text())
    topics = []

    def walk(node):
        if isinstance(node, dict):
            if isinstance(node.get('Topic'), dict):
                topics.append(node['Topic']['Value'])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(config)
    published = set(output_topics('robomaster').values()) | set(
        pixel_output_topics('robomaster').values()) | set(
        instance_output_topics('robomaster').values())
    camera = '/robomaster/camera/image_color'  # the robomaster_ros driver's topic
    assert topics and set(topics) <= published | {camera}
    assert '/robomaster/frame_anomaly/markers' in topics
    assert '/robomaster/pixel_anomaly/overlay' in topics
    assert '/robomaster/instance_anomaly/markers' in topics


@pytest.mark.parametrize('name, yaml_name', [('frame', 'frame_anomaly.yaml'),
                                             ('pixel', 'pixel_anomaly.yaml'),
                                             ('instance', 'instance_anomaly.yaml'),
                                             ('synthesis', 'synthesis.yaml')])
def test_parameter_file_lists_every_parameter_with_its_default(name, yaml_name):
    from anomaly_perception.branches.registry import get_branch
    branch = get_branch(name)
    text = (ROOT / 'config' / yaml_name).read_text()
    assert text == branch.config_module.parameter_file(), (
        f'config/{yaml_name} is out of date; regenerate it with python -c "from '
        f'anomaly_perception.branches.{name}.config import parameter_file; '
        f"open('config/{yaml_name}', 'w').write(parameter_file())\"")
    assert load_config(branch.config, ROOT / 'config' / yaml_name) == branch.config()


@pytest.mark.parametrize('path', LAUNCH_FILES, ids=lambda p: p.name)
def test_launch_file_gives_everything_it_starts_the_shipped_dds_profile(path):
    tree = ast.parse(path.read_text())
    constants = {n.targets[0].id: ast.literal_eval(n.value) for n in tree.body
                 if isinstance(n, ast.Assign) and isinstance(n.targets[0], ast.Name)}
    assert (ROOT / 'config' / constants['DDS_PROFILE']).is_file()
    variables = {'FASTRTPS_DEFAULT_PROFILES_FILE', 'FASTDDS_DEFAULT_PROFILES_FILE'}
    assert set(constants['DDS_PROFILE_VARIABLES']) == variables
    body = tree.body[-1].body  # generate_launch_description
    entities = next(n for n in ast.walk(body[-1]) if isinstance(n, ast.List)).elts
    names = [ast.unparse(e) for e in entities]
    first_env = next(i for i, n in enumerate(names) if 'SetEnvironmentVariable' in n)
    first_process = next(i for i, n in enumerate(names)
                         if n.startswith(('Node(', 'ExecuteProcess(')))
    assert first_env < first_process, 'the profile must be set before anything starts'


def test_dds_profile_gives_shared_memory_room_for_camera_frames():
    import xml.etree.ElementTree as ElementTree
    ns = {'p': 'http://www.eprosima.com/XMLSchemas/fastRTPS_Profiles'}
    root = ElementTree.parse(ROOT / 'config' / 'fastdds_camera_profile.xml').getroot()
    transports = {t.find('p:transport_id', ns).text: t
                  for t in root.findall('p:transport_descriptors/p:transport_descriptor', ns)}
    shm = [t for t in transports.values() if t.find('p:type', ns).text == 'SHM']
    assert len(shm) == 1
    segment = int(shm[0].find('p:segment_size', ns).text)
    assert segment >= 8 * 1280 * 720 * 3, 'room for several 1280x720 bgr8 frames'
    participant = root.find('p:participant', ns)
    assert participant.get('is_default_profile') == 'true'
    used = [t.text for t in participant.findall('p:rtps/p:userTransports/p:transport_id', ns)]
    assert set(used) == set(transports)
    assert {transports[t].find('p:type', ns).text for t in used} == {'SHM', 'UDPv4'}, \
        'UDP stays for traffic that leaves the machine'
    assert participant.find('p:rtps/p:useBuiltinTransports', ns).text == 'false'

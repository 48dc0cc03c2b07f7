"""Typed configuration: dataclasses loaded from YAML, checked strictly.

Each pipeline has one config dataclass. :func:`load_config` fills it from a
YAML file (plain mapping, or a ROS 2 parameter file with
``<node>: ros__parameters: {...}``), so the files in ``config/`` serve both
the CLI and the nodes. Unknown keys, wrong types and out-of-range values are
errors that name the key and the file.

Field metadata understood here (and by the nodes' parameter descriptors):

* ``description``: one line for docs and ``ros2 param describe``;
* ``range``: ``(low, high)`` inclusive bounds for numbers;
* ``choices``: allowed values;
* ``configure_time``: read when a (lifecycle) node configures; it can
  change only while the node is unconfigured.

Example::

    @dataclasses.dataclass
    class SmoothingConfig:
        alpha: float = field(0.3, 'EMA weight of the newest score', range=(0.0, 1.0))

    cfg = load_config(SmoothingConfig, 'config/smoothing.yaml')
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

import dataclasses
import difflib
import enum
from pathlib import Path
import types
import typing

import yaml

from .errors import ConfigError


def field(default, description='', *, range=None, choices=None,  # noqa: A002
          configure_time=False):
    """Declare a config field with its default and metadata (see module docs)."""
    metadata = {'description': description, 'configure_time': configure_time}
    if range is not None:
        metadata['range'] = tuple(range)
    if choices is not None:
        metadata['choices'] = tuple(choices)
    if isinstance(default, (list, dict, set)):
        return dataclasses.field(default_factory=lambda: type(default)(default),
                                 metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


def parameter_specs_of(cls):
    """``(name, default, description, range, choices, configure_time)`` per field of ``cls``."""
    return [(f.name, f.default, f.metadata.get('description', ''), f.metadata.get('range'),
             f.metadata.get('choices'), f.metadata.get('configure_time', False))
            for f in dataclasses.fields(cls)]


PARAMETER_FILE_HEADER = """\
# Parameters of {node} (anomaly_perception), with their defaults.
# ros2 run anomaly_perception {node} --ros-args --params-file <this file>
# The same file configures `anomaly-perception replay --params`. Unknown keys,
# wrong types and out-of-range values are errors that name the key.
# [configure] parameters are read by the lifecycle configure transition and
# change only while the node is unconfigured; the others change live.
# (Generated from {cls} by parameter_file(); a test keeps the two equal.)
"""
OFFLINE_PARAMETER_FILE_HEADER = """\
# Parameters of the {node} pipeline (anomaly_perception), with their defaults.
# It runs offline, with no ROS node of its own:
# anomaly-perception replay BAG --pipelines {node} --params <this file>
# Unknown keys, wrong types and out-of-range values are errors that name the key.
# (Generated from {cls} by parameter_file(); a test keeps the two equal.)
"""


def parameter_file_of(cls, node, header=PARAMETER_FILE_HEADER):
    """Return a node's parameter YAML (config/*.yaml): every parameter, its default and help."""
    import textwrap
    lines = [header.format(node=node, cls=cls.__name__).rstrip('\n'), '/**:',
             '  ros__parameters:']
    for name, default, description, rng, choices, configure_time in parameter_specs_of(cls):
        notes = []
        if choices:
            notes.append(f'one of {", ".join(choices)}')
        if rng:
            notes.append(f'range {rng[0]}..{rng[1]}')
        if configure_time:
            notes.append('configure')
        text = description + (f' [{"; ".join(notes)}]' if notes else '')
        lines += textwrap.wrap(text, 95, initial_indent='    # ', subsequent_indent='    # ')
        value = yaml.safe_dump(default, default_flow_style=True).strip()
        value = value.removesuffix('\n...').removesuffix('...').strip()
        lines.append(f'    {name}: {value}')
    return '\n'.join(lines) + '\n'


class NodeParameters:
    """One node's ROS parameters, as the fields of its config dataclass ``cls``.

    A branch's ``config.py`` binds its three functions at module level
    (``config_from_parameters``, ``parameter_specs``, ``parameter_file``),
    which the node base and the tests call.
    """

    def __init__(self, cls, node, header=PARAMETER_FILE_HEADER):
        self.cls, self.node, self.header = cls, node, header

    def config_from_parameters(self, values, source='ROS parameters'):
        """Build a config from a ``{name: value}`` dict, checked strictly (ConfigError)."""
        return config_from_dict(self.cls, values, source=source)

    def parameter_specs(self):
        """``(name, default, description, range, choices, configure_time)`` per parameter."""
        return parameter_specs_of(self.cls)

    def parameter_file(self):
        """Return the parameter YAML (config/*.yaml): every parameter, its default and help."""
        return parameter_file_of(self.cls, self.node, self.header)


def _type_name(tp):
    origin = typing.get_origin(tp)
    if origin is typing.Literal:
        return 'one of ' + ', '.join(repr(a) for a in typing.get_args(tp))
    if origin in (typing.Union, types.UnionType):
        return ' or '.join(_type_name(a) for a in typing.get_args(tp))
    if tp is type(None):
        return 'null'
    if origin is not None:
        args = ', '.join(_type_name(a) for a in typing.get_args(tp))
        return f'{origin.__name__}[{args}]'
    return getattr(tp, '__name__', str(tp))


def _describe_value(value):
    text = repr(value)
    return f'{type(value).__name__} {text if len(text) < 60 else text[:57] + "..."}'


class _Loader:
    """Converts YAML data to typed dataclasses, remembering the file for messages."""

    def __init__(self, source):
        self.source = source

    def fail(self, key, message):
        where = f'{self.source}: ' if self.source else ''
        raise ConfigError(f'{where}{key}: {message}')

    def convert(self, tp, value, key):
        origin = typing.get_origin(tp)
        args = typing.get_args(tp)
        if tp is typing.Any:
            return value
        if origin in (typing.Union, types.UnionType):
            if value is None and type(None) in args:
                return None
            for arg in args:
                if arg is type(None):
                    continue
                try:
                    return self.convert(arg, value, key)
                except ConfigError:
                    continue
            self.fail(key, f'expected {_type_name(tp)}, got {_describe_value(value)}')
        if origin is typing.Literal:
            if value in args:
                return value
            self.fail(key, f'expected {_type_name(tp)}, got {value!r}')
        if dataclasses.is_dataclass(tp):
            if not isinstance(value, dict):
                self.fail(key, f'expected a mapping for {tp.__name__}, '
                               f'got {_describe_value(value)}')
            return self.build(tp, value, key)
        if origin in (list, tuple, set, frozenset) or tp in (list, tuple):
            if not isinstance(value, (list, tuple)):
                self.fail(key, f'expected a list, got {_describe_value(value)}')
            if origin is tuple and args and args[-1] is not Ellipsis:
                if len(args) != len(value):
                    self.fail(key, f'expected {len(args)} items, got {len(value)}')
                return tuple(self.convert(a, v, f'{key}[{i}]')
                             for i, (a, v) in enumerate(zip(args, value)))
            item = args[0] if args else typing.Any
            items = [self.convert(item, v, f'{key}[{i}]') for i, v in enumerate(value)]
            return (origin or tp)(items)
        if origin is dict or tp is dict:
            if not isinstance(value, dict):
                self.fail(key, f'expected a mapping, got {_describe_value(value)}')
            kt, vt = args if args else (typing.Any, typing.Any)
            return {self.convert(kt, k, f'{key}.{k}'): self.convert(vt, v, f'{key}.{k}')
                    for k, v in value.items()}
        if isinstance(tp, type) and issubclass(tp, enum.Enum):
            try:
                return tp(value)
            except ValueError:
                names = ', '.join(repr(m.value) for m in tp)
                self.fail(key, f'expected one of {names}, got {value!r}')
        if tp is bool:
            if isinstance(value, bool):
                return value
            self.fail(key, f'expected true or false, got {_describe_value(value)}')
        if tp is int:
            if isinstance(value, int) and not isinstance(value, bool):
                return value
            self.fail(key, f'expected an integer, got {_describe_value(value)}')
        if tp is float:
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                return float(value)
            self.fail(key, f'expected a number, got {_describe_value(value)}')
        if tp is str:
            if isinstance(value, str):
                return value
            self.fail(key, f'expected a string, got {_describe_value(value)}')
        if tp is Path:
            if isinstance(value, str):
                return Path(value)
            self.fail(key, f'expected a path string, got {_describe_value(value)}')
        raise TypeError(f'config type {tp!r} of {key} is not supported')

    def build(self, cls, data, prefix=''):
        hints = typing.get_type_hints(cls)
        fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
        unknown = [k for k in data if k not in fields]
        if unknown:
            key = f'{prefix}.{unknown[0]}' if prefix else str(unknown[0])
            close = difflib.get_close_matches(str(unknown[0]), fields, n=1)
            hint = f" (did you mean '{close[0]}'?)" if close else ''
            self.fail(key, f'unknown key{hint}; {cls.__name__} has: {", ".join(fields)}')
        values = {}
        for name, value in data.items():
            key = f'{prefix}.{name}' if prefix else name
            converted = self.convert(hints[name], value, key)
            self.check_metadata(fields[name].metadata, converted, key)
            values[name] = converted
        try:
            return cls(**values)
        except (TypeError, ValueError) as err:
            self.fail(prefix or cls.__name__, str(err))

    def check_metadata(self, metadata, value, key):
        low_high = metadata.get('range')
        if low_high is not None and value is not None:
            low, high = low_high
            if not (low <= value <= high):
                self.fail(key, f'{value!r} is out of range [{low}, {high}]')
        choices = metadata.get('choices')
        if choices is not None and value not in choices:
            self.fail(key, f'expected one of {", ".join(map(repr, choices))}, got {value!r}')


def config_from_dict(cls, data, *, source=''):
    """Build ``cls`` from a mapping, checking keys, types and ranges.

    Raises:
        ConfigError: naming ``source`` and the offending key.

    """
    loader = _Loader(source)
    if data is None:
        data = {}
    if not isinstance(data, dict):
        loader.fail(cls.__name__, f'expected a mapping, got {_describe_value(data)}')
    return loader.build(cls, data)


def _unwrap_ros_parameters(data, node_name):
    """Return the parameters of a ROS 2 parameter file, or ``data`` if it is not one."""
    if not isinstance(data, dict):
        return data
    nodes = {k: v for k, v in data.items()
             if isinstance(v, dict) and 'ros__parameters' in v}
    if not nodes:
        return data
    if len(nodes) != len(data):
        return data
    if node_name is not None:
        for key in (node_name, '/' + node_name.lstrip('/'), '/**'):
            if key in nodes:
                return nodes[key]['ros__parameters']
        raise ConfigError(f'no parameters for node {node_name!r}; the file has {list(nodes)}')
    if len(nodes) == 1:
        return next(iter(nodes.values()))['ros__parameters']
    raise ConfigError(f'the file holds parameters of several nodes {list(nodes)}; name one')


def load_config(cls, path, *, section=None, node_name=None):
    """Load ``cls`` from a YAML file.

    Args:
        cls: the config dataclass.
        path: YAML file: a mapping of the fields, or a ROS 2 parameter file.
        section: optional top-level key holding this config.
        node_name: for parameter files with several nodes, which one.

    Raises:
        ConfigError: missing/unreadable file, bad YAML, unknown key, wrong
            type or value out of range; the message names the file and key.

    """
    path = Path(path)
    try:
        text = path.read_text(encoding='utf-8')
    except OSError as err:
        raise ConfigError(f'{path}: cannot read config file ({err.strerror}).') from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as err:
        mark = getattr(err, 'problem_mark', None)
        where = f' at line {mark.line + 1}' if mark is not None else ''
        raise ConfigError(f'{path}: invalid YAML{where}: {getattr(err, "problem", err)}.') \
            from None
    try:
        data = _unwrap_ros_parameters(data, node_name)
    except ConfigError as err:
        raise ConfigError(f'{path}: {err}') from None
    if section is not None:
        if not isinstance(data, dict) or section not in data:
            raise ConfigError(f'{path}: no section {section!r}.')
        data = data[section]
    return config_from_dict(cls, data, source=str(path))


def config_to_dict(config):
    """Plain-data dict of a config (enums to values, paths to strings), for YAML/JSON."""
    def plain(value):
        if dataclasses.is_dataclass(value):
            return {f.name: plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
        if isinstance(value, enum.Enum):
            return value.value
        if isinstance(value, Path):
            return str(value)
        if isinstance(value, (list, tuple)):
            return [plain(v) for v in value]
        if isinstance(value, dict):
            return {k: plain(v) for k, v in value.items()}
        return value
    return plain(config)

"""The hazard monitor in a replay: one fused flag from the frame and pixel pipelines.

After each batch, :class:`MonitorRecorder` hands every frame's calibrated
probabilities (the frame branch's ``~/score``, the pixel branch's
frame-level ``~/score``, both after the run baseline) to
:class:`~..stream.fusion.HazardMonitor`, the object the ``hazard_monitor``
node runs, and writes what it decides to ``<ns>/hazard_monitor/hazard``:
a vision_msgs/Classification whose first result is ``hazard`` or ``clear``
with the smoothed fused probability, followed by each branch's probability
at that frame, the branch that raised the flag (or, while clear, the most
surprised one) first, and to ``<ns>/hazard_monitor/markers``
(visualization_msgs/MarkerArray: one text marker in front of the camera,
``HAZARD 0.97 (pixel)`` in red or ``clear 0.12`` in green, for rviz). With
labels, the report holds its event metrics beside each branch's own.
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

import numpy as np

from ..io.messages import hypothesis
from ..metrics.events import event_metrics
from ..metrics.events import flag_episodes
from ..stream.fusion import HazardMonitor

NODE_NAME = 'hazard_monitor'
HAZARD_TYPE = 'vision_msgs/msg/Classification'
MARKERS_TYPE = 'visualization_msgs/msg/MarkerArray'
MARKER_DISTANCE_M = 2.0     # the text floats this far in front of the camera, above the frame's
# The hazard_monitor node's parameters: (name, default, description).
MONITOR_PARAMETERS = (
    ('place', '', 'place directory written by `train place` [changes only while unconfigured]'),
    ('autostart', True, 'configure and activate when the node starts'),
    ('max_age_s', 1.0, "seconds a branch's latest probability stands in for a frame it skipped"),
    ('max_wait_s', 2.0, 'seconds a frame waits for a silent branch before it is decided'),
    ('diagnostics_period_s', 1.0, 'seconds between /diagnostics messages'),
)


@dataclasses.dataclass
class MonitorSpec:
    """What a replay's monitor fuses, and how (from a place directory)."""

    config: object              # the fused flag's HazardConfig
    branches: tuple = ('frame', 'pixel')
    rule: str = 'max_probability'
    place: str = None           # the place directory, for the report


def monitor_topics(namespace=''):
    """Return the monitor node's output topics in ``namespace`` ('' = root)."""
    ns = '/' + namespace.strip('/') if namespace.strip('/') else ''
    return {'hazard': f'{ns}/{NODE_NAME}/hazard', 'markers': f'{ns}/{NODE_NAME}/markers'}


def monitor_classification(f, header, result):
    """Build the monitor's ``~/hazard`` message of one decided stamp (see module docs)."""
    state = result.state
    first = state.source
    order = [first] + sorted(b for b in result.evidence if b != first)
    return f.new(HAZARD_TYPE, header=header, results=[
        hypothesis(f, 'hazard' if state.flag else 'clear', state.smoothed)] + [
        hypothesis(f, b, float(result.evidence[b])) for b in order if b in result.evidence])


def monitor_markers(f, header, result):
    """Build the monitor's ``~/markers`` of one decided stamp: the fused flag as rviz text."""
    state = result.state
    if state.flag:
        colour, text = (1.0, 0.15, 0.1), f'HAZARD {state.smoothed:.2f} ({state.source})'
    else:
        colour, text = (0.2, 0.9, 0.3), f'clear {state.smoothed:.2f}'
    marker = f.new(
        'visualization_msgs/msg/Marker', header=header, ns=NODE_NAME, id=0,
        type=9, action=0,  # TEXT_VIEW_FACING, ADD
        pose=f.new('geometry_msgs/msg/Pose',
                   position=f.new('geometry_msgs/msg/Point', x=0.0, y=-0.5,
                                  z=MARKER_DISTANCE_M),
                   orientation=f.new('geometry_msgs/msg/Quaternion', w=1.0)),
        scale=f.new('geometry_msgs/msg/Vector3', x=0.0, y=0.0, z=0.2),
        color=f.new('std_msgs/msg/ColorRGBA', r=colour[0], g=colour[1], b=colour[2], a=1.0),
        text=text)
    return f.new(MARKERS_TYPE, markers=[marker])


def score_probability(msg):
    """Return the probability a branch node's ``~/score`` message carries (unscorable: 1).

    Raises:
        ValueError: a message without results, or not a ``~/score``.

    """
    if not msg.results:
        raise ValueError('a score message without results')
    first = msg.results[0]
    if first.class_id not in ('anomaly', 'unscorable'):
        raise ValueError(f'not a ~/score message (first result {first.class_id!r})')
    return float(first.score)


def monitor_diagnostics(f, header, state, error, counts, last_reason, place):
    """Build the monitor node's ``/diagnostics`` (one status with its counts)."""
    level, message = 0, 'fusing'
    if error:
        level, message = 2, f'place not loaded: {error}'
    elif state != 'active':
        level, message = 1, f'not fusing: lifecycle state {state}'
    elif counts.get('malformed'):
        level, message = 1, f"{counts['malformed']} malformed score message(s) skipped"
    values = {'lifecycle_state': state, 'place': place, 'last_malformed_reason': last_reason,
              **{k: str(v) for k, v in counts.items()}}
    status = f.new('diagnostic_msgs/msg/DiagnosticStatus', level=f.byte(level),
                   name=f'anomaly_perception: {NODE_NAME}', message=message, hardware_id=place,
                   values=[f.new('diagnostic_msgs/msg/KeyValue', key=k, value=v)
                           for k, v in values.items()])
    return f.new('diagnostic_msgs/msg/DiagnosticArray', header=header, status=[status])


def branch_probability(branch, result):
    """Return the calibrated frame-level probability a branch's stream result carries."""
    if branch == 'frame':
        return result.probability
    if branch == 'pixel':
        return result.pixels.frame_probability
    raise ValueError(f'the monitor cannot read the {branch!r} branch')


class MonitorRecorder:
    """The monitor's share of a replay (see module docs)."""

    def __init__(self, spec, namespace, peers):
        missing = [b for b in spec.branches if b not in peers]
        if missing:
            raise ValueError(f'the hazard monitor needs the {", ".join(missing)} pipeline(s)')
        self.spec = spec
        self.peers = peers
        self.monitor = HazardMonitor(spec.config, spec.branches, spec.rule)
        self.topics = monitor_topics(namespace)
        self.headers = {}
        self.stamps, self.flags, self.sources = [], [], []

    def start(self, out):
        self.out = out
        out.add_topic(self.topics['hazard'], HAZARD_TYPE)
        out.add_topic(self.topics['markers'], MARKERS_TYPE)

    def process(self, frames):
        for frame in frames:
            self.headers[frame.stamp_ns] = frame.header
            for branch in self.spec.branches:
                result = self.peers[branch].last_results[frame.stamp_ns]
                p = branch_probability(branch, result)
                for decided in self.monitor.add(branch, frame.stamp_ns, p):
                    self._write(decided)

    def _write(self, decided):
        header = self.headers.pop(decided.stamp_ns)
        self.out.write(self.topics['hazard'], monitor_classification(self.out.factory, header,
                                                                     decided),
                       log_time_ns=decided.stamp_ns)
        self.out.write(self.topics['markers'], monitor_markers(self.out.factory, header,
                                                               decided),
                       log_time_ns=decided.stamp_ns)
        self.stamps.append(decided.stamp_ns)
        self.flags.append(decided.state.flag)
        self.sources.append(decided.state.source if decided.state.flag else None)

    def report(self):
        config = self.spec.config
        stamps = np.asarray(self.stamps, np.int64)
        episodes = []
        for start, end in flag_episodes(stamps, np.asarray(self.flags, bool)):
            index = int(np.searchsorted(stamps, start))
            episodes.append({'start_ns': int(start), 'end_ns': int(end),
                             'raised_by': self.sources[index]})
        return {'place': self.spec.place, 'rule': self.spec.rule,
                'branches': list(self.spec.branches), 'output_topics': self.topics,
                'hazard': dataclasses.asdict(config), 'frames_decided': len(self.stamps),
                'alarm_episodes': episodes}

    def metrics(self, stamps, frame_labels):
        """Return the fused flag's event metrics on the replay's labelled frames."""
        index = {int(s): i for i, s in enumerate(stamps)}
        labels = [frame_labels[index[int(s)]] for s in self.stamps]
        return {'events': event_metrics(self.stamps, labels, self.flags)}

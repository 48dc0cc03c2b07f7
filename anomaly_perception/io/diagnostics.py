"""``/diagnostics`` of the perception nodes, the same for every branch, live and in replay."""

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

DIAGNOSTICS_TOPIC = '/diagnostics'
DIAGNOSTICS_TYPE = 'diagnostic_msgs/msg/DiagnosticArray'
OK, WARN, ERROR = 0, 1, 2


def diagnostics_message(f, node_name, header, snapshot, backend, model_name, model_ok=True):
    """Build ``/diagnostics``: one status with a perception node's numbers.

    ``snapshot`` holds :meth:`StreamStats.snapshot` 's numbers plus, from
    a node, ``lifecycle_state``, ``model_error``, ``malformed_by_kind``,
    ``dropped_in_transport`` (+ ``transport_loss_method``),
    ``dds_messages_lost``, ``qos_incompatible`` (+ ``qos_incompatible_policy``),
    ``publishers`` and ``transport_latency_median_ms``; ``extra``: a branch's
    own ``{key: value}`` (the instance node's keyframe and pairing counts).
    """
    state = snapshot.get('lifecycle_state', 'active')
    level, message = OK, 'scoring frames'
    if not model_ok:
        level = ERROR
        message = 'model not loaded' + (f": {snapshot['model_error']}"
                                        if snapshot.get('model_error') else '')
    elif state != 'active':
        level, message = WARN, f'not scoring: lifecycle state {state}'
    elif snapshot.get('qos_incompatible'):
        level = ERROR
        message = ('a publisher of the image topic offers QoS incompatible with the '
                   f"subscription ({snapshot.get('qos_incompatible_policy', '?')}): its "
                   'frames never arrive')
    elif snapshot['since_last_frame_s'] > 2.0:
        level, message = WARN, 'no image for {:.1f} s'.format(
            min(snapshot['since_last_frame_s'], 1e9))
    elif snapshot['malformed']:
        level, message = WARN, f"{snapshot['malformed']} malformed image(s) skipped"
    values = {
        'lifecycle_state': state,
        'input_rate_hz': f"{snapshot['input_rate_hz']:.1f}",
        'processed_rate_hz': f"{snapshot['processed_rate_hz']:.1f}",
        'received': str(snapshot['received']), 'processed': str(snapshot['processed']),
        'dropped': str(snapshot.get('dropped', 0)),
        'dropped_in_transport': str(snapshot.get('dropped_in_transport', 0)),
        'transport_loss_method': str(snapshot.get('transport_loss_method', '')),
        'dds_messages_lost': str(snapshot.get('dds_messages_lost', 0)),
        'skipped_by_rate_cap': str(snapshot.get('rate_skipped', 0)),
        'malformed': str(snapshot['malformed']),
        'last_malformed_reason': snapshot.get('last_malformed_reason', ''),
        'qos_incompatible': str(snapshot.get('qos_incompatible', 0)),
        'publishers': str(snapshot.get('publishers', '')),
        'latency_median_ms': f"{snapshot['latency_median_ms']:.2f}",
        'latency_p99_ms': f"{snapshot['latency_p99_ms']:.2f}",
        'transport_latency_median_ms': '{:.2f}'.format(
            snapshot.get('transport_latency_median_ms', float('nan'))),
        'since_last_frame_s': f"{min(snapshot['since_last_frame_s'], 1e9):.2f}",
        'backend': str(backend.get('backend', '')),
        'device': str(backend.get('device', '')),
        'precision': str(backend.get('precision', '')),
        'model': model_name,
    }
    for kind, count in sorted(snapshot.get('malformed_by_kind', {}).items()):
        values[f'malformed: {kind}'] = str(count)
    for key, value in snapshot.get('extra', {}).items():
        values[key] = value if isinstance(value, str) else (
            f'{value:.2f}' if isinstance(value, float) else str(value))
    status = f.new('diagnostic_msgs/msg/DiagnosticStatus', level=f.byte(level),
                   name=f'anomaly_perception: {node_name}', message=message,
                   hardware_id=model_name,
                   values=[f.new('diagnostic_msgs/msg/KeyValue', key=k, value=v)
                           for k, v in values.items()])
    return f.new('diagnostic_msgs/msg/DiagnosticArray', header=header, status=[status])

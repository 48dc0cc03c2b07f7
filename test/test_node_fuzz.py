"""Seeded fuzzing of frame_anomaly_node's message path (2,000 cases here).

Random and mutated Image / CompressedImage messages go through the node's
own subscription callback and worker: every well-formed frame is scored,
every malformed one counted under a named kind, nothing raises, the worker
survives and memory stays flat. ``benchmarks/fuzz_node.py --cases 10000``
runs the long version.
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

from anomaly_perception.io.image_fuzz import drive
from anomaly_perception.io.image_fuzz import fuzz_cases
import pytest

pytestmark = pytest.mark.ros


@pytest.mark.parametrize('transport,count,seed', [('raw', 1200, 11), ('compressed', 800, 12)])
def test_fuzzed_messages_are_scored_or_counted_and_memory_stays_flat(
        ros_context, transport, count, seed, capfd):
    from anomaly_perception.nodes.frame_anomaly_node import FrameAnomalyNode
    from rclpy.parameter import Parameter

    params = {'backend': 'onnxruntime', 'process_all_frames': True, 'input_transport': transport}
    node = FrameAnomalyNode(context=ros_context, parameter_overrides=[
        Parameter(k, value=v) for k, v in params.items()])
    try:
        assert node.autostart()
        cases = list(fuzz_cases(node.factory, count, seed=seed,
                                compressed=transport == 'compressed'))
        report = drive(cases, lambda msg: node._on_image(msg, {}),
                       lambda: (node.stats.processed, node.malformed.snapshot()))
        alive = node.worker.is_alive()
    finally:
        node.close()
    assert report.wrong == []
    assert report.cases == count and report.scored + report.refused == count
    assert report.scored > 0.3 * count and report.refused > 0.2 * count
    assert 'processing error' not in report.by_kind, report.by_kind
    assert alive
    assert report.rss_growth_mb < 30, report.rss_mb
    assert 'Traceback' not in capfd.readouterr().err
    print(f'{transport}: {report.scored} scored, {report.refused} refused {report.by_kind}, '
          f'{report.seconds:.1f} s, RSS {report.rss_mb[0]:.0f} -> {report.rss_mb[-1]:.0f} MiB')

"""Long fuzz of frame_anomaly_node's message path (the test suite runs 2,000 cases).

    python benchmarks/fuzz_node.py --cases 10000 [--seed 0]

Random and mutated Image and CompressedImage messages (see
:mod:`anomaly_perception.io.image_fuzz`) go through the node's subscription
callback and worker, raw and compressed transport in turn. Prints and writes
(``out/bench/fuzz_node.json``) the outcome counts per kind, any case whose
outcome broke its expectation, the cases per second and resident memory at
the end of the first quarter and at the end. Exit code 1 if any case went
wrong, a frame raised an unexpected error, or memory grew by 50 MiB or more.
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

import argparse
import os
from pathlib import Path
import sys

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import OUT  # noqa: E402, I100
from common import write_report  # noqa: E402


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--cases', type=int, default=10000)
    parser.add_argument('--seed', type=int, default=0)
    args = parser.parse_args(argv)
    os.environ.setdefault('ROS_AUTOMATIC_DISCOVERY_RANGE', 'LOCALHOST')
    os.environ.setdefault('ROS_DOMAIN_ID', str(1 + os.getpid() % 100))
    os.environ.setdefault('ROS_LOG_DIR', str(OUT / 'ros_log'))

    import rclpy
    from rclpy.parameter import Parameter

    from anomaly_perception.io.image_fuzz import drive
    from anomaly_perception.io.image_fuzz import fuzz_cases
    from anomaly_perception.nodes.frame_anomaly_node import FrameAnomalyNode

    rclpy.init()
    results, failed = {}, False
    try:
        for transport, share in (('raw', 0.6), ('compressed', 0.4)):
            count = int(round(args.cases * share))
            params = {'backend': 'onnxruntime', 'process_all_frames': True,
                      'input_transport': transport}
            node = FrameAnomalyNode(parameter_overrides=[
                Parameter(k, value=v) for k, v in params.items()])
            try:
                node.autostart()
                cases = list(fuzz_cases(node.factory, count, seed=args.seed,
                                        compressed=transport == 'compressed'))
                report = drive(cases, lambda msg: node._on_image(msg, {}),
                               lambda: (node.stats.processed, node.malformed.snapshot()))
                alive = node.worker.is_alive()
            finally:
                node.close()
            results[transport] = {
                'cases': report.cases, 'scored': report.scored, 'refused': report.refused,
                'refused_by_kind': report.by_kind, 'wrong': [list(map(str, w))
                                                             for w in report.wrong[:50]],
                'wrong_count': len(report.wrong), 'worker_alive': alive,
                'cases_per_s': report.cases / report.seconds,
                'rss_mib_after_warmup': report.rss_mb[0], 'rss_mib_end': report.rss_mb[-1]}
            failed |= bool(report.wrong) or not alive or 'processing error' in report.by_kind \
                or report.rss_growth_mb >= 50
            print(f'{transport:10s} {report.cases} cases: {report.scored} scored, '
                  f'{report.refused} refused, {len(report.wrong)} wrong, '
                  f'{report.cases / report.seconds:.0f} cases/s, RSS '
                  f'{report.rss_mb[0]:.0f} -> {report.rss_mb[-1]:.0f} MiB')
            for kind, n in sorted(report.by_kind.items()):
                print(f'    {kind:32s} {n}')
    finally:
        rclpy.try_shutdown()
    path = write_report('fuzz_node', {'seed': args.seed, **results})
    print(f'written {path}')
    return 1 if failed else 0


if __name__ == '__main__':
    sys.exit(main())

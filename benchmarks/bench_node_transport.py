"""frame_anomaly_node between two processes: frames scored, latency, start-up.

    python benchmarks/bench_node_transport.py [--seconds 60] [--rate 30]

For the shipped Fast DDS profile and for Fast DDS's defaults in turn: starts
``frame_anomaly_node`` from its console entry point (default parameters:
best-effort depth-1 subscription, latest frame wins; ``--backend``, default
onnxruntime), then this process publishes 640x360 bgr8 synthetic patrol
frames at ``--rate`` Hz, reliable depth 1 as the Robomaster driver does, and
listens to ``~/score``. Reported per setting:

* frames scored / frames sent;
* image-publish -> score-received latency (median, p99), both clocks this
  machine's; the node's own share (decode + inference) from its diagnostics;
* node start: process start -> image subscription visible (node active), and
  the configure transition's own time from the node's log; also alone, five
  starts with default parameters (``--start-only``; ``--node-command`` to
  time another checkout the same way);
* the node's CPU use while the stream runs.

Writes ``out/bench/node_transport.json`` and a latency histogram
``out/bench/node_transport.png``.
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
import json
import os
from pathlib import Path
import re
import shlex
import signal
import subprocess
import sys
import tempfile
import threading
import time

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import OUT  # noqa: E402, I100
from common import write_report  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
PROFILE = ROOT / 'config' / 'fastdds_camera_profile.xml'
TOPIC = '/robomaster/camera/image_color'


def _frames(count=30):
    from anomaly_perception.data.synthetic.patrol import PatrolConfig
    from anomaly_perception.data.synthetic.patrol import write_patrol_bag
    from anomaly_perception.io.bags import BagReader
    with tempfile.TemporaryDirectory() as tmp:
        write_patrol_bag(Path(tmp) / 'bag', PatrolConfig(seconds=count / 10, fps=10,
                                                         anomaly_rate=0.3), progress=False)
        with BagReader(Path(tmp) / 'bag') as bag:
            return [f.image[..., ::-1].copy() for f in bag.read_images(TOPIC)]


def _cpu_seconds(pid):
    fields = Path(f'/proc/{pid}/stat').read_text().rsplit(')', 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf('SC_CLK_TCK')


def run_setting(name, profile, frames, args, domain):
    import rclpy
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.qos import QoSProfile
    from rclpy.qos import ReliabilityPolicy

    from anomaly_perception.io.images import numpy_to_image_fields
    from anomaly_perception.nodes.rclpy_messages import RclpyMessageFactory

    env = dict(os.environ, ROS_AUTOMATIC_DISCOVERY_RANGE='LOCALHOST', ROS_DOMAIN_ID=str(domain),
               RCUTILS_COLORIZED_OUTPUT='0')
    for variable in ('FASTRTPS_DEFAULT_PROFILES_FILE', 'FASTDDS_DEFAULT_PROFILES_FILE'):
        env.pop(variable, None)
        if profile:
            env[variable] = str(profile)
    os.environ.clear()
    os.environ.update(env)
    context = rclpy.Context()
    rclpy.init(context=context, domain_id=domain)
    node = rclpy.create_node('transport_bench', context=context)
    factory = RclpyMessageFactory()
    image_cls = factory._cls('sensor_msgs/msg/Image')
    publisher = node.create_publisher(image_cls, TOPIC, QoSProfile(
        depth=1, reliability=ReliabilityPolicy.RELIABLE))
    sent, received = {}, {}
    node.create_subscription(factory._cls('vision_msgs/msg/Classification'),
                             '/robomaster/frame_anomaly/score',
                             lambda m: received.setdefault(
                                 m.header.stamp.sec * 10 ** 9 + m.header.stamp.nanosec,
                                 time.perf_counter()), 100)
    diagnostics = []
    node.create_subscription(factory._cls('diagnostic_msgs/msg/DiagnosticArray'),
                             '/diagnostics', diagnostics.append, 10)
    executor = SingleThreadedExecutor(context=context)
    executor.add_node(node)
    spinning = [True]

    def spin():
        while spinning[0]:
            executor.spin_once(timeout_sec=0.05)

    thread = threading.Thread(target=spin, daemon=True)
    thread.start()

    log_path = OUT / f'node_transport_{name}.log'
    OUT.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    with open(log_path, 'w') as log:
        proc = subprocess.Popen(
            [str(Path(sys.executable).parent / 'frame_anomaly_node'), '--ros-args', '-r',
             '__ns:=/robomaster', '-r', 'image:=camera/image_color', '-p',
             f'backend:={args.backend}'], env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        while publisher.get_subscription_count() == 0:
            if time.perf_counter() - started > 60 or proc.poll() is not None:
                raise RuntimeError(f'the node did not start; see {log_path}')
            time.sleep(0.005)
        active_s = time.perf_counter() - started
        time.sleep(1.0)
        messages = [factory.new('sensor_msgs/msg/Image', header=factory.header(0, 'camera'),
                                **numpy_to_image_fields(f, 'bgr8')) for f in frames]
        count = int(args.seconds * args.rate)
        cpu0, wall0 = _cpu_seconds(proc.pid), time.perf_counter()
        stamp0 = time.time_ns()
        for i in range(count):
            due = wall0 + i / args.rate
            delay = due - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            msg = messages[i % len(messages)]
            stamp = stamp0 + int(i * 1e9 / args.rate)
            msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(stamp, 10 ** 9)
            sent[stamp] = time.perf_counter()
            publisher.publish(msg)
            if i and i % int(args.rate * 10) == 0:
                print(f'  {name}: {i}/{count} frames sent, {len(received)} scored '
                      f'({i / args.rate:.0f}/{args.seconds:.0f} s)', flush=True)
        time.sleep(1.0)
        cpu = (_cpu_seconds(proc.pid) - cpu0) / (time.perf_counter() - wall0)
        proc.send_signal(signal.SIGINT)
        code = proc.wait(10)
    finally:
        if proc.poll() is None:
            proc.kill()
        spinning[0] = False
        thread.join()
        node.destroy_node()
        context.try_shutdown()
    latency = np.array([(received[s] - sent[s]) * 1e3 for s in sent if s in received])
    log = log_path.read_text()
    configured = re.search(r'configured in ([0-9.]+) s', log)
    node_ms = None
    for array in reversed(diagnostics):
        values = {kv.key: kv.value for kv in array.status[0].values}
        if values.get('latency_median_ms', 'nan') != 'nan':
            node_ms = float(values['latency_median_ms'])
            break
    return {
        'profile': str(profile.relative_to(ROOT)) if profile else 'Fast DDS defaults',
        'frames_sent': len(sent), 'frames_scored': len(latency),
        'scored_fraction': len(latency) / len(sent),
        'latency_median_ms': float(np.median(latency)) if latency.size else None,
        'latency_p99_ms': float(np.percentile(latency, 99)) if latency.size else None,
        'node_inference_median_ms': node_ms,
        'node_start_to_active_s': active_s,
        'configure_s': float(configured.group(1)) if configured else None,
        'node_cpu_cores': cpu, 'exit_code': code,
    }, latency


SETTINGS = {'shipped_profile': PROFILE, 'fastdds_defaults': None}


def start_times(args, domain, runs=5):
    """Process start -> node active (its image subscription visible), default parameters."""
    import rclpy
    from rclpy.qos import QoSProfile
    from sensor_msgs.msg import Image
    env = dict(os.environ, ROS_AUTOMATIC_DISCOVERY_RANGE='LOCALHOST', ROS_DOMAIN_ID=str(domain),
               FASTRTPS_DEFAULT_PROFILES_FILE=str(PROFILE))
    command = (shlex.split(args.node_command) if args.node_command
               else [str(Path(sys.executable).parent / 'frame_anomaly_node')])
    context = rclpy.Context()
    rclpy.init(context=context, domain_id=domain)
    node = rclpy.create_node('start_bench', context=context)
    publisher = node.create_publisher(Image, '/image', QoSProfile(depth=1))
    active, visible = [], []
    try:
        for _ in range(runs):
            log_path = OUT / 'node_start.log'
            with open(log_path, 'w') as log:
                started, wall = time.perf_counter(), time.time()
                proc = subprocess.Popen(command, env=env, stdout=log,
                                        stderr=subprocess.STDOUT)
            while publisher.get_subscription_count() == 0:
                if time.perf_counter() - started > 60 or proc.poll() is not None:
                    raise RuntimeError(f'{command} did not start')
                time.sleep(0.002)
            visible.append(time.perf_counter() - started)
            proc.send_signal(signal.SIGINT)
            proc.wait(10)
            stamp = re.search(r'\[(\d+\.\d+)\] \[\S+\]: active', log_path.read_text())
            active.append(float(stamp.group(1)) - wall if stamp else float('nan'))
            while publisher.get_subscription_count() > 0:
                time.sleep(0.01)
    finally:
        node.destroy_node()
        context.try_shutdown()
    return {'active_by_node_log_s': active, 'visible_to_publisher_s': visible}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--seconds', type=float, default=60.0)
    parser.add_argument('--rate', type=float, default=30.0)
    parser.add_argument('--backend', default='onnxruntime')
    parser.add_argument('--setting', choices=sorted(SETTINGS) + ['start'],
                        help=argparse.SUPPRESS)
    parser.add_argument('--node-command', help='measure the start of this command instead of '
                        'frame_anomaly_node (e.g. another checkout), default parameters')
    parser.add_argument('--start-only', action='store_true',
                        help='only measure the node start (5 runs)')
    args = parser.parse_args(argv)
    os.environ.setdefault('ROS_LOG_DIR', str(OUT / 'ros_log'))
    if args.setting == 'start':
        times = start_times(args, 1 + os.getpid() % 90)
        (OUT / 'node_start.json').write_text(json.dumps(times))
        return 0
    if args.setting:
        # One setting per process: Fast DDS reads its profile once per process, and the
        # publisher's side of the transport (the sender's shared-memory segment) matters.
        domain = 1 + os.getpid() % 90
        result, latency = run_setting(args.setting, SETTINGS[args.setting], _frames(), args,
                                      domain)
        np.save(OUT / f'node_transport_{args.setting}_latency.npy', latency)
        (OUT / f'node_transport_{args.setting}.json').write_text(json.dumps(result))
        return 0
    OUT.mkdir(parents=True, exist_ok=True)
    start_command = [sys.executable, __file__, '--setting', 'start']
    if args.node_command:
        start_command += ['--node-command', args.node_command]
    subprocess.run(start_command, check=True)
    starts = json.loads((OUT / 'node_start.json').read_text())
    results = {'node_start': {
        'command': args.node_command or 'frame_anomaly_node',
        'parameters': 'defaults (backend auto)', **starts,
        'active_median_s': float(np.nanmedian(starts['active_by_node_log_s'])),
        'first_visible_s': starts['visible_to_publisher_s'][0],
        'restart_visible_median_s': float(np.median(starts['visible_to_publisher_s'][1:]))}}
    r = results['node_start']
    print(f"node start, default parameters, {len(starts['visible_to_publisher_s'])} runs: "
          f"process start -> active (node's log) median {r['active_median_s']:.2f} s; "
          f"subscription visible to a publisher {r['first_visible_s']:.2f} s the first "
          f"time, median {r['restart_visible_median_s']:.2f} s on restarts", flush=True)
    if args.start_only:
        print(f"written {write_report('node_start', results)}")
        return 0
    latencies = {}
    for name in SETTINGS:
        print(f'{name}: {args.seconds:.0f} s of 640x360 bgr8 at {args.rate:.0f} Hz', flush=True)
        subprocess.run([sys.executable, __file__, '--setting', name, '--seconds',
                        str(args.seconds), '--rate', str(args.rate), '--backend', args.backend],
                       check=True)
        results[name] = json.loads((OUT / f'node_transport_{name}.json').read_text())
        latencies[name] = np.load(OUT / f'node_transport_{name}_latency.npy')
        r = results[name]
        print(f"  scored {r['frames_scored']}/{r['frames_sent']} "
              f"({100 * r['scored_fraction']:.1f} %), latency median "
              f"{r['latency_median_ms']:.2f} ms, p99 {r['latency_p99_ms']:.2f} ms; node "
              f"active {r['node_start_to_active_s']:.2f} s after start (configure "
              f"{r['configure_s']} s); node CPU {r['node_cpu_cores']:.2f} cores", flush=True)
    results['settings'] = {'seconds': args.seconds, 'rate_hz': args.rate,
                           'backend': args.backend, 'resolution': '640x360 bgr8'}
    path = write_report('node_transport', results)
    _plot(latencies, OUT / 'node_transport.png')
    print(f'written {path} and {OUT / "node_transport.png"}')
    return 0


def _plot(latencies, path):
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(7, 3.5))
    top = max(float(np.percentile(v, 99.5)) for v in latencies.values() if v.size)
    bins = np.linspace(0, top, 60)
    for name, values in latencies.items():
        ax.hist(np.clip(values, 0, top), bins=bins, alpha=0.6,
                label=f'{name} (median {np.median(values):.1f} ms, n={values.size})')
    ax.set_xlabel('image publish -> score received (ms)')
    ax.set_ylabel('frames')
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


if __name__ == '__main__':
    sys.exit(main())

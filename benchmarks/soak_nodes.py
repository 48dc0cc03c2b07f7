"""Soak the nodes: frame, pixel and hazard monitor, each in its own process, fed for an hour.

Four processes besides this one, all over the shipped Fast DDS profile on a
domain of their own, localhost only:

* ``frame_anomaly_node``, ``pixel_anomaly_node`` and ``hazard_monitor`` (a
  place's fused flag; ``--place``, or a small place learnt once into
  ``OUT/place`` from a synthetic normal run), started from their console
  entry points with the packaged parameter files, under ``/soak``;
* a camera: another process publishing 640x360 bgr8 frames at ``--rate``
  (10 Hz) with the Robomaster driver's QoS (reliable, depth 1), stamped with
  the wall clock; one message in every 100 is corrupt (its data cut short).

This process listens to the nodes' ``~/score``, the monitor's ``~/hazard``
and ``/diagnostics``, and samples each node's resident memory and CPU time
from ``/proc`` every ``--sample-s`` seconds. Per window of ``--window-s``
seconds (default 300) it reports each node's latency (camera stamp to the
score's arrival here, p50 / p99), frames scored, memory and CPU. At the end
every frame the camera sent is accounted for from the nodes' own final
diagnostics: scored, dropped (a newer frame replaced it), skipped by the
rate cap, malformed, or lost in transport, and the sum must equal what was
sent. Verdicts (``checks`` in the report):

* ``memory``: each node's resident memory at the end within ``--max-growth``
  (default 5 %) of its level after warm-up (``--warmup-s``, default 120 s:
  the models' first passes, allocator pools);
* ``latency``: each node's p99 of the last ``--compare-s`` seconds (default
  600) within 20 % of the first ``--compare-s`` after warm-up (skipped when
  the run is too short to hold both);
* ``accounted``: no frame unaccounted for, in every node;
* ``alive``: no node died, and each exits 0 on SIGINT.

Writes ``OUT/soak.json`` and ``OUT/soak.png`` (memory over time, latency
per window); exit code 1 if a check fails.

Run: ``python benchmarks/soak_nodes.py --minutes 60 [--out out/bench/soak]``
(``make test`` runs a 2-minute version: test/test_soak.py).
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
import random
import signal
import subprocess
import sys
import threading
import time

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
NAMESPACE = '/soak'
CAMERA_TOPIC = f'{NAMESPACE}/camera/image_color'
NODES = {
    'frame': ('frame_anomaly_node', 'config/frame_anomaly.yaml', 'frame_anomaly'),
    'pixel': ('pixel_anomaly_node', 'config/pixel_anomaly.yaml', 'pixel_anomaly'),
    'monitor': ('hazard_monitor', None, 'hazard_monitor'),
}
CORRUPT_EVERY = 100
RESOLUTION = (360, 640)


# --- the camera (its own process) ----------------------------------------------------------


def _camera_frames(count=20, seed=7):
    """Render a short loop of synthetic patrol frames (RGB, 640x360): 2 s of normal driving."""
    from anomaly_perception.data.synthetic.patrol import PatrolConfig
    from anomaly_perception.data.synthetic.patrol import plan_patrol
    from anomaly_perception.data.synthetic.world import Sequence
    spec = plan_patrol(PatrolConfig(seconds=count / 10.0, fps=10.0, anomaly_rate=0.0,
                                    seed=seed))
    sequence = Sequence(spec)
    return [sequence.frame(k / 10.0, RESOLUTION[1], RESOLUTION[0]).image
            for k in range(count)]


def run_camera(args):
    """Publish frames at ``args.rate`` until SIGINT; print the counts as JSON on exit."""
    import rclpy
    from rclpy.qos import QoSProfile
    from rclpy.qos import ReliabilityPolicy
    from sensor_msgs.msg import Image
    frames = [np.ascontiguousarray(f[..., ::-1]).tobytes() for f in _camera_frames()]
    rclpy.init()
    node = rclpy.create_node('soak_camera')
    publisher = node.create_publisher(Image, CAMERA_TOPIC, QoSProfile(
        depth=1, reliability=ReliabilityPolicy.RELIABLE))
    stop = threading.Event()
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    counts = {'sent': 0, 'corrupt': 0, 'late': 0}
    # Frames sent before a node's subscription has matched are lost where nobody can count
    # them: wait for both perception nodes, then a little longer for the match both ways.
    deadline = time.monotonic() + 60.0
    while publisher.get_subscription_count() < 2 and time.monotonic() < deadline:
        rclpy.spin_once(node, timeout_sec=0.1)
    stop.wait(2.0)
    period = 1.0 / args.rate
    start = time.monotonic()
    while not stop.is_set():
        due = start + counts['sent'] * period
        delay = due - time.monotonic()
        if delay > 0:
            stop.wait(delay)
            if stop.is_set():
                break
        elif delay < -period:
            counts['late'] += 1
        now = time.time_ns()
        msg = Image()
        msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(now, 1_000_000_000)
        msg.header.frame_id = 'soak/camera_optical_link'
        msg.height, msg.width = RESOLUTION
        msg.encoding, msg.step = 'bgr8', RESOLUTION[1] * 3
        data = frames[counts['sent'] % len(frames)]
        if counts['sent'] % CORRUPT_EVERY == CORRUPT_EVERY - 1:
            data = data[:len(data) // 2]            # wrong data length: counted, skipped
            counts['corrupt'] += 1
        msg.data = data
        publisher.publish(msg)
        counts['sent'] += 1
    print(json.dumps(counts), flush=True)
    node.destroy_node()
    rclpy.try_shutdown()


# --- the nodes' processes -------------------------------------------------------------------


def _proc_sample(pid):
    """Return ``(resident MiB, CPU seconds)`` of ``pid`` from /proc (NaN if gone)."""
    try:
        with open(f'/proc/{pid}/statm') as f:
            rss = int(f.read().split()[1]) * os.sysconf('SC_PAGE_SIZE') / 2 ** 20
        with open(f'/proc/{pid}/stat') as f:
            fields = f.read().rsplit(')', 1)[1].split()
        cpu = (int(fields[11]) + int(fields[12])) / os.sysconf('SC_CLK_TCK')
    except (OSError, ValueError, IndexError):
        return float('nan'), float('nan')
    return rss, cpu


def _start(executable, args, env, log):
    path = Path(sys.executable).parent / executable
    return subprocess.Popen([str(path), *args], env=env, stdout=log, stderr=subprocess.STDOUT)


def _node_args(name, place):
    executable, params, node_name = NODES[name]
    args = ['--ros-args', '-r', f'__ns:={NAMESPACE}']
    if params:
        args += ['--params-file', str(ROOT / params), '-r', 'image:=camera/image_color',
                 '-p', 'backend:=onnxruntime']
    if name == 'monitor':
        args += ['-p', f'place:={place}', '-r', 'frame/score:=frame_anomaly/score',
                 '-r', 'pixel/score:=pixel_anomaly/score']
    return executable, args


def ensure_place(out):
    """Learn a small place once (a 70 s synthetic normal run) for the monitor; return it."""
    place = out / 'place'
    if (place / 'manifest.yaml').is_file():
        return place
    from anomaly_perception.branches.place.place import PlaceConfig
    from anomaly_perception.branches.place.place import train_place_from_bags
    from anomaly_perception.data.synthetic.patrol import PatrolConfig
    from anomaly_perception.data.synthetic.patrol import write_patrol_bag
    import dataclasses
    bag = out / 'normal_run'
    if not bag.exists():
        write_patrol_bag(bag, PatrolConfig(seconds=70.0, fps=2.0, anomaly_rate=0.0, seed=7),
                         progress=False)
    config = PlaceConfig()
    config = dataclasses.replace(config, pixel=dataclasses.replace(config.pixel, steps=20))
    train_place_from_bags([bag], place, out / 'place_work', config, overwrite=True,
                          show_progress=False)
    return place


# --- this process: listen, sample, account --------------------------------------------------


class Listener:
    """Scores, hazards and diagnostics of the soaked nodes, with arrival times."""

    def __init__(self):
        import rclpy
        from diagnostic_msgs.msg import DiagnosticArray
        from rclpy.executors import SingleThreadedExecutor
        from vision_msgs.msg import Classification
        rclpy.init()
        self.node = rclpy.create_node('soak_listener')
        self.lock = threading.Lock()
        self.latency = {'frame': [], 'pixel': [], 'monitor': []}
        self.diagnostics = {}
        for name, topic in (('frame', 'frame_anomaly/score'), ('pixel', 'pixel_anomaly/score'),
                            ('monitor', 'hazard_monitor/hazard')):
            self.node.create_subscription(Classification, f'{NAMESPACE}/{topic}',
                                          lambda msg, n=name: self._on_output(n, msg), 100)
        self.node.create_subscription(DiagnosticArray, '/diagnostics', self._on_diagnostics,
                                      100)
        self.executor = SingleThreadedExecutor()
        self.executor.add_node(self.node)
        self.running = True
        self.thread = threading.Thread(target=self._spin, daemon=True)
        self.thread.start()

    def _spin(self):
        while self.running:
            self.executor.spin_once(timeout_sec=0.05)

    def _on_output(self, name, msg):
        now = time.time_ns()
        stamp = msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec
        with self.lock:
            self.latency[name].append((time.monotonic(), (now - stamp) / 1e6))

    def _on_diagnostics(self, msg):
        with self.lock:
            for status in msg.status:
                self.diagnostics[status.name] = {kv.key: kv.value for kv in status.values}

    def take(self):
        """Return and clear the outputs received since the last call."""
        with self.lock:
            out = {k: list(v) for k, v in self.latency.items()}
            for v in self.latency.values():
                v.clear()
        return out

    def node_diagnostics(self, node_name):
        with self.lock:
            for name, values in self.diagnostics.items():
                if name.endswith(node_name):
                    return dict(values)
        return {}

    def close(self):
        import rclpy
        self.running = False
        self.thread.join()
        self.node.destroy_node()
        rclpy.try_shutdown()


def _percentiles(values):
    if not values:
        return {'n': 0, 'p50_ms': float('nan'), 'p99_ms': float('nan')}
    arr = np.asarray(values, float)
    return {'n': int(arr.size), 'p50_ms': float(np.percentile(arr, 50)),
            'p99_ms': float(np.percentile(arr, 99))}


def _accounting(diag, camera):
    """Every frame the camera sent, by what became of it in one perception node."""
    get = {k: int(float(diag.get(k, 0) or 0)) for k in (
        'received', 'processed', 'dropped', 'skipped_by_rate_cap', 'malformed',
        'dropped_in_transport')}
    accounted = (get['processed'] + get['dropped'] + get['skipped_by_rate_cap'] +
                 get['malformed'] + get['dropped_in_transport'])
    return {**get, 'sent': camera['sent'], 'corrupt_sent': camera['corrupt'],
            'unaccounted': camera['sent'] - accounted}


def soak(args):
    """Run the whole soak described in the module docs; return the report."""
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    place = Path(args.place) if args.place else ensure_place(out)
    env = dict(os.environ)
    profile = str(ROOT / 'config' / 'fastdds_camera_profile.xml')
    env.update({'ROS_DOMAIN_ID': str(args.domain), 'ROS_AUTOMATIC_DISCOVERY_RANGE': 'LOCALHOST',
                'FASTRTPS_DEFAULT_PROFILES_FILE': profile,
                'FASTDDS_DEFAULT_PROFILES_FILE': profile, 'PYTHONUNBUFFERED': '1',
                'ROS_LOG_DIR': str(out / 'ros_log'), 'RCUTILS_COLORIZED_OUTPUT': '0'})
    os.environ.update(env)
    logs = {name: open(out / f'{name}.log', 'w') for name in list(NODES) + ['camera']}
    procs, camera = {}, None
    listener = Listener()
    report = {'minutes': args.minutes, 'rate_hz': args.rate, 'window_s': args.window_s,
              'warmup_s': args.warmup_s, 'place': str(place), 'windows': [], 'memory': {},
              'died': {}}
    try:
        for name in NODES:
            executable, node_args = _node_args(name, place)
            procs[name] = _start(executable, node_args, env, logs[name])
        time.sleep(args.settle_s)           # the models load, the nodes activate
        camera = subprocess.Popen([sys.executable, __file__, '--role', 'camera', '--rate',
                                   str(args.rate)], env=env, stdout=subprocess.PIPE,
                                  stderr=logs['camera'], text=True)
        started = time.monotonic()
        end = started + args.minutes * 60.0
        listener.take()
        samples = {name: [] for name in NODES}      # (t_s, rss MiB, cpu s)
        window = {'start_s': 0.0, 'latency': {n: [] for n in listener.latency}}
        next_window = started + args.window_s
        print(f'soak: {args.minutes:g} min at {args.rate:g} Hz; one corrupt frame in '
              f'{CORRUPT_EVERY}; report every {args.window_s:g} s', flush=True)
        while time.monotonic() < end:
            time.sleep(min(args.sample_s, max(0.0, end - time.monotonic())))
            now = time.monotonic()
            for name, proc in procs.items():
                rss, cpu = _proc_sample(proc.pid)
                samples[name].append((now - started, rss, cpu))
                if proc.poll() is not None and name not in report['died']:
                    report['died'][name] = {'code': proc.returncode, 'after_s': now - started,
                                            'log': str(out / f'{name}.log')}
                    print(f'{name} DIED with code {proc.returncode} after '
                          f'{(now - started) / 60:.1f} min; see {out / (name + ".log")}',
                          flush=True)
            if report['died']:
                break
            for name, items in listener.take().items():
                window['latency'][name].extend(ms for _, ms in items)
            if now >= next_window or now >= end:
                report['windows'].append(_close_window(window, samples, now - started))
                _say_window(report['windows'][-1], end - now)
                window = {'start_s': now - started, 'latency': {n: [] for n in listener.latency}}
                next_window += args.window_s
        camera.send_signal(signal.SIGINT)
        camera_counts = json.loads(camera.communicate(timeout=30)[0].strip().splitlines()[-1])
        time.sleep(args.drain_s)            # the last frames are scored, diagnostics sent
        report['camera'] = camera_counts
        report['accounting'] = {
            name: _accounting(listener.node_diagnostics(NODES[name][2]), camera_counts)
            for name in ('frame', 'pixel')}
        report['memory'] = _memory(samples, args.warmup_s)
        report['samples'] = {n: [list(map(float, s)) for s in v] for n, v in samples.items()}
    finally:
        if camera is not None and camera.poll() is None:
            camera.kill()
            camera.wait()
        exits = {}
        for name, proc in procs.items():
            if proc.poll() is None:
                proc.send_signal(signal.SIGINT)
        for name, proc in procs.items():
            try:
                exits[name] = proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                exits[name] = 'killed after 15 s'
        report['exit_codes'] = exits
        listener.close()
        for log in logs.values():
            log.close()
    report['checks'] = _checks(report, args)
    (out / 'soak.json').write_text(json.dumps(report, indent=1) + '\n')
    _plot(out / 'soak.png', report)
    return report


def _close_window(window, samples, now_s):
    row = {'start_s': window['start_s'], 'end_s': now_s}
    for name, values in window['latency'].items():
        row[name] = _percentiles(values)
    for name, rows in samples.items():
        inside = [s for s in rows if window['start_s'] <= s[0] <= now_s]
        if len(inside) >= 2:
            span = inside[-1][0] - inside[0][0]
            row[name]['rss_mb'] = inside[-1][1]
            row[name]['cpu_percent'] = (100 * (inside[-1][2] - inside[0][2]) / span if span
                                        else float('nan'))
    return row


def _say_window(row, left_s):
    bits = []
    for name in NODES:
        r = row[name]
        bits.append(f"{name} {r['n']} out, p50 {r['p50_ms']:.0f} p99 {r['p99_ms']:.0f} ms, "
                    f"{r.get('rss_mb', float('nan')):.0f} MiB, "
                    f"{r.get('cpu_percent', float('nan')):.0f}% CPU")
    print(f"[{row['start_s'] / 60:5.1f}-{row['end_s'] / 60:5.1f} min] " + '; '.join(bits) +
          f' | {left_s / 60:.1f} min left', flush=True)


def _memory(samples, warmup_s):
    out = {}
    for name, rows in samples.items():
        after = [s[1] for s in rows if s[0] >= warmup_s]
        if len(after) < 6:
            out[name] = {'warm_mb': float('nan'), 'end_mb': float('nan'),
                         'growth_percent': float('nan')}
            continue
        warm, last = float(np.median(after[:3])), float(np.median(after[-3:]))
        out[name] = {'warm_mb': warm, 'end_mb': last, 'peak_mb': float(max(after)),
                     'growth_percent': 100.0 * (last - warm) / warm}
    return out


def _checks(report, args):
    checks = {}
    memory = report.get('memory', {})
    checks['memory'] = {
        'limit_percent': args.max_growth,
        'passed': bool(memory) and all(np.isfinite(m['growth_percent']) and
                                       m['growth_percent'] <= args.max_growth
                                       for m in memory.values())}
    accounting = report.get('accounting', {})
    # A corrupt frame a newer one replaced before it was decoded is counted as dropped, not
    # malformed; a good frame must never be counted malformed.
    checks['accounted'] = {'passed': bool(accounting) and all(
        a['unaccounted'] == 0 and
        a['corrupt_sent'] - a['dropped'] <= a['malformed'] <= a['corrupt_sent']
        for a in accounting.values())}
    checks['alive'] = {'passed': not report['died'] and all(
        code == 0 for code in report['exit_codes'].values())}
    windows = [w for w in report['windows'] if w['start_s'] >= args.warmup_s]
    usable = report['windows'][-1]['end_s'] - args.warmup_s if report['windows'] else 0
    if usable >= 2 * args.compare_s:
        first = [w for w in windows if w['end_s'] <= args.warmup_s + args.compare_s]
        last = [w for w in windows if w['start_s'] >= report['windows'][-1]['end_s'] -
                args.compare_s - 1]
        ratios = {}
        for name in ('frame', 'pixel'):
            a = max(w[name]['p99_ms'] for w in first)
            b = max(w[name]['p99_ms'] for w in last)
            ratios[name] = b / a
        checks['latency'] = {'p99_last_over_first': ratios, 'limit': 1.2,
                             'passed': all(r <= 1.2 for r in ratios.values())}
    else:
        checks['latency'] = {'passed': None, 'skipped': f'shorter than 2 x {args.compare_s:g} s '
                                                        'after warm-up'}
    return checks


def _plot(path, report):
    import matplotlib
    matplotlib.use('Agg', force=True)
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(1, 2, figsize=(12, 4), dpi=100)
    for name, rows in report.get('samples', {}).items():
        if rows:
            arr = np.asarray(rows)
            axes[0].plot(arr[:, 0] / 60, arr[:, 1], label=name)
    axes[0].set_xlabel('minutes')
    axes[0].set_ylabel('resident memory (MiB)')
    axes[0].axvline(report['warmup_s'] / 60, color='0.6', ls='--', lw=0.8, label='warm-up')
    axes[0].legend(fontsize=8)
    for name in NODES:
        mids = [(w['start_s'] + w['end_s']) / 120 for w in report['windows']]
        axes[1].plot(mids, [w[name]['p50_ms'] for w in report['windows']], 'o-',
                     label=f'{name} p50')
        axes[1].plot(mids, [w[name]['p99_ms'] for w in report['windows']], 's--',
                     label=f'{name} p99')
    axes[1].set_xlabel('minutes')
    axes[1].set_ylabel('camera stamp -> output (ms)')
    axes[1].set_yscale('log')
    axes[1].legend(fontsize=7, ncol=3)
    fig.suptitle(f"soak: {report['minutes']:g} min at {report['rate_hz']:g} Hz", fontsize=10)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--role', choices=('soak', 'camera'), default='soak',
                        help=argparse.SUPPRESS)
    parser.add_argument('--minutes', type=float, default=60.0)
    parser.add_argument('--rate', type=float, default=10.0, help='camera frames per second')
    parser.add_argument('--out', default=str(ROOT / 'out' / 'bench' / 'soak'))
    parser.add_argument('--place', help='place directory for the monitor (default: a small '
                                        'one learnt once into OUT/place)')
    parser.add_argument('--window-s', type=float, default=300.0)
    parser.add_argument('--sample-s', type=float, default=5.0)
    parser.add_argument('--warmup-s', type=float, default=120.0)
    parser.add_argument('--compare-s', type=float, default=600.0)
    parser.add_argument('--max-growth', type=float, default=5.0,
                        help='resident memory growth after warm-up allowed, percent')
    parser.add_argument('--settle-s', type=float, default=15.0,
                        help='seconds for the nodes to load before the camera starts')
    parser.add_argument('--drain-s', type=float, default=4.0)
    parser.add_argument('--domain', type=int, default=random.randint(150, 199),
                        help='ROS_DOMAIN_ID of the soak (default: a random one of 150-199)')
    args = parser.parse_args()
    if args.role == 'camera':
        run_camera(args)
        return 0
    report = soak(args)
    failed = [name for name, check in report['checks'].items() if check['passed'] is False]
    print(json.dumps(report['checks'], indent=1))
    print(f"written {Path(args.out) / 'soak.json'} and soak.png; "
          + ('all checks passed' if not failed else f"FAILED: {', '.join(failed)}"))
    return 1 if failed else 0


if __name__ == '__main__':
    sys.exit(main())

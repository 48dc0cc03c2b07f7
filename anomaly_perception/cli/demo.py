"""``demo``: the main job on the embedded default data."""

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

from .bags import format_replay
from .common import positive_int


def add_demo(sub):
    p = sub.add_parser(
        'demo', help='the main job on the embedded default data',
        description='Learn a place and watch it: a normal patrol of one synthetic building -> '
                    '`train frame --bag` -> replay of a different patrol of the same building '
                    'with anomalies, with the learnt model and with the shipped generic model; '
                    'print both reports and where the plots and output bags are.')
    p.add_argument('--out', default='out/demo', help='output folder (default out/demo)')
    p.add_argument('--normal-seconds', type=float, default=120.0,
                   help='normal patrol to learn from, at 10 Hz (default 120)')
    p.add_argument('--seconds', type=float, default=60.0,
                   help='patrol with anomalies to replay, at 30 Hz (default 60)')
    p.add_argument('--workers', type=positive_int, default=2)
    p.set_defaults(run=_run_demo)


def _run_demo(args):
    from pathlib import Path
    import time

    from ..branches.frame.train_bags import train_frame_from_bags
    from ..branches.registry import get_branches
    from ..data.synthetic.patrol import patrol_scene_seed
    from ..data.synthetic.patrol import PatrolConfig
    from ..data.synthetic.patrol import write_patrol_bag
    from ..replay.engine import replay

    out = Path(args.out)
    normal_bag, patrol_bag = out / 'normal_patrol', out / 'patrol_bag'
    model_dir = out / 'learnt_model'
    started = time.perf_counter()
    building = patrol_scene_seed(PatrolConfig(seed=101))
    print(f'[1/4] normal patrol of building {building}: {args.normal_seconds:g} s at 10 Hz, '
          '640x360, no anomalies')
    write_patrol_bag(normal_bag, PatrolConfig(seconds=args.normal_seconds, fps=10.0,
                                              anomaly_rate=0.0, seed=101, scene_seed=building),
                     workers=args.workers, overwrite=True)
    print(f'[2/4] train frame --bag {normal_bag}  (the whole 16:9 view, held-out time blocks, '
          'threshold for 2 false alarms per hour)')
    manifest = train_frame_from_bags([normal_bag], model_dir, out / 'train_work',
                                     overwrite=True, command='anomaly-perception demo')
    print(f'[3/4] another patrol of the same building with anomalies: {args.seconds:g} s at '
          '30 Hz, as the Robomaster driver records it, with label topics')
    summary = write_patrol_bag(patrol_bag, PatrolConfig(seconds=args.seconds, anomaly_rate=0.4,
                                                        seed=31337, scene_seed=building),
                               workers=args.workers, overwrite=True)
    print('[4/4] replaying it with the learnt model, then with the shipped generic, pixel and '
          'instance models (where each anomaly is, and what stands on the floor)')
    learnt = replay(patrol_bag, out / 'replay', get_branches('frame'), model_dir=model_dir,
                    backend='auto', overwrite=True)
    generic = replay(patrol_bag, out / 'replay_shipped', get_branches('frame,pixel,instance'),
                     backend='auto', overwrite=True)
    print()
    t = manifest['provenance']['training']
    print(f"learnt model:  {model_dir}  ({t['wall_s']:.0f} s to train on "
          f"{manifest['provenance']['data']['frames']} frames)")
    events = ', '.join(e['type_name'] for e in summary['events']) or 'none'
    print(f'patrol bag:    {patrol_bag}  ({summary["frames"]} frames; anomalies on the way: '
          f'{events})')
    print(format_replay(learnt, out / 'replay'))
    print()
    print('on the same patrol, learnt vs shipped generic model:')
    for name, report in (('learnt', learnt), ('shipped', generic)):
        print(f'  {name:8s} {_one_line(report)}')
    px = generic['branches']['pixel']
    if 'pixels' in px:
        p = px['pixels']
        print(f"pixel branch (shipped pixel_erfnet, {px['pipeline_frames_per_s']:.0f} frames/s): "
              f"pixel AuPRC {p['auprc']:.3f}, FPR95 {p['fpr95']:.3f}; the mask located "
              f"{p['events_located']}/{p['n_local_events']} local anomalies; maps in "
              f"{out / 'replay_shipped'}/outputs (/robomaster/pixel_anomaly/*)")
    inst = generic['branches']['instance']
    line = ('instance branch (shipped instance_sam_small on the pixel map): '
            f"{inst['keyframes']} keyframes, {inst['instances_per_keyframe']:.1f} instances and "
            f"{inst['hazards_placed'] / max(inst['keyframes'], 1):.1f} floor hazards per "
            'keyframe')
    if 'instances' in inst:
        m = inst['instances']
        line += (f"; iAP50 {m['iap50']:.3f}, pixel AP {m['pixel_ap_input']:.3f} -> "
                 f"{m['pixel_ap_refined']:.3f} after the ensemble (weak masks: docs/RESULTS.md)")
    print(line)
    print(f"  contact sheet {out / 'replay_shipped' / inst.get('contact_sheet', '')}; "
          'topics /robomaster/instance_anomaly/*')
    print(f'demo took {time.perf_counter() - started:.0f} s. To look at it in rviz2 or Foxglove: '
          f'ros2 bag play {patrol_bag} and {out / "replay"}/outputs; see docs/REPLAY.md.')
    return 0


def _one_line(replayed):
    report = replayed['branches']['frame']
    ev = report['events']
    return (f"AUROC {report['auroc']:.3f}, {ev['detected']}/{ev['n_events']} anomalies "
            f"flagged, {ev['false_alarms']} false alarm(s) ({ev['false_alarms_per_hour']:.0f}"
            f"/h), flag on {100 * ev['alarm_time_fraction']:.1f}% of normal driving")

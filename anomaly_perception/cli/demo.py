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


DEMO_SCENE = 2026       # a building none of the shipped models was trained in
DEMO_TYPES = 'cable,foam,water,boxes,human,mist'   # the patrol's anomalies: thin ones too
DEMO_PATROL_SEED = 11                               # its run: boxes, then a cable


def add_demo(sub):
    p = sub.add_parser(
        'demo', help='the main job on the embedded default data',
        description='Learn a place and watch it: a normal run of a synthetic building the '
                    'shipped models never saw -> '
                    '`train place` (frame and pixel branches, one fused flag) -> replay of '
                    'another run of the same building with anomalies (a cable among them), '
                    'with the shipped generic models and with the place; print both side by '
                    'side and where the plots and output bags are.')
    p.add_argument('--out', default='out/demo', help='output folder (default out/demo)')
    p.add_argument('--normal-seconds', type=float, default=65.0,
                   help='normal run to learn from, at 10 Hz (default 65; train place '
                        'needs 60 s at least)')
    p.add_argument('--seconds', type=float, default=50.0,
                   help='patrol with anomalies to replay, at 10 Hz (default 50)')
    p.add_argument('--pixel-steps', type=positive_int, default=70,
                   help="the place's pixel learning steps (default 70, to fit the demo in "
                        "5 minutes; train place's default is 480)")
    p.add_argument('--workers', type=positive_int, default=2)
    p.set_defaults(run=_run_demo)


def _run_demo(args):
    import dataclasses
    from pathlib import Path
    import time

    from ..branches.place.directory import load_place
    from ..branches.place.place import PlaceConfig
    from ..branches.place.place import train_place_from_bags
    from ..branches.registry import get_branches
    from ..data.synthetic.patrol import PatrolConfig
    from ..data.synthetic.patrol import write_patrol_bag
    from ..replay.engine import replay

    out = Path(args.out)
    normal_bag, patrol_bag, place_dir = out / 'normal_run', out / 'patrol_bag', out / 'place'
    started = time.perf_counter()

    def step(text):
        print(f'[{time.perf_counter() - started:3.0f} s] {text}', flush=True)

    building = DEMO_SCENE
    step(f'1/5 a normal run through building {building}, one the shipped models never saw: '
         f'{args.normal_seconds:g} s at 10 Hz, 640x360, no anomalies')
    write_patrol_bag(normal_bag, PatrolConfig(seconds=args.normal_seconds, fps=10.0,
                                              anomaly_rate=0.0, seed=101, scene_seed=building),
                     workers=args.workers, overwrite=True)
    step(f'2/5 train place --bag {normal_bag} --pixel-steps {args.pixel_steps}  (the frame '
         'branch, the pixel branch, then one fused flag for 2 false alarms per hour)')
    config = PlaceConfig()
    config = dataclasses.replace(config, pixel=dataclasses.replace(config.pixel,
                                                                   steps=args.pixel_steps))
    train_place_from_bags([normal_bag], place_dir, out / 'train_work', config, overwrite=True,
                          command='anomaly-perception demo')
    place = load_place(place_dir)
    step(f'3/5 another run of the same building (its own exposure, noise, blur and route) '
         f'with anomalies: {args.seconds:g} s at 10 Hz, with label topics')
    summary = write_patrol_bag(patrol_bag, PatrolConfig(
        seconds=args.seconds, fps=10.0, anomaly_rate=0.4, seed=DEMO_PATROL_SEED,
        scene_seed=building, types=DEMO_TYPES), workers=args.workers, overwrite=True)
    step('4/5 replay with the shipped generic frame and pixel models')
    generic = replay(patrol_bag, out / 'replay_generic', get_branches('frame,pixel'),
                     backend='auto', overwrite=True)
    step(f'5/5 replay --place {place_dir}  (its frame and pixel models and the hazard '
         'monitor)')
    learnt = replay(patrol_bag, out / 'replay_place', get_branches('frame,pixel'),
                    model_dirs=place.model_dirs(), monitor=place.monitor_spec(),
                    backend='auto', overwrite=True)
    print()
    wall = place.place['provenance']['wall_s']
    size = sum(f.stat().st_size for f in place_dir.rglob('*') if f.is_file()) / 2 ** 20
    print(f"place:       {place_dir}  ({wall['total']:.0f} s to learn from "
          f'{args.normal_seconds:g} s of normal driving; {size:.1f} MB)')
    events = ', '.join(e['type_name'] for e in summary['events']) or 'none'
    print(f'patrol bag:  {patrol_bag}  ({summary["frames"]} frames; anomalies on the way: '
          f'{events})')
    print(format_replay(learnt, out / 'replay_place'))
    print()
    print('on the same patrol, side by side (events flagged; false alarms, per hour of normal '
          'driving; flag on, share of normal driving):')
    print(f"  {'':8s} {'flag':6s} {'events':>7s} {'cable':>6s} {'false alarms':>14s} "
          f"{'flag on':>8s} {'pixel AuPRC':>12s}")
    for name, report in (('generic', generic), ('place', learnt)):
        for flag, part in _flags(report):
            print(f'  {name:8s} {flag:6s} {_row(part, report if flag == "pixel" else None)}')
    print('(a minute of normal driving tells 0 false alarms per hour from 60 only; '
          'docs/RESULTS.md has `experiment place` over 39 minutes of other runs of three '
          'buildings)')
    print(f'demo took {time.perf_counter() - started:.0f} s. To look at it in rviz2 or Foxglove: '
          f'ros2 bag play {patrol_bag} and {out / "replay_place"}/outputs; instance masks: '
          f'replay {patrol_bag} --pipelines frame,pixel,instance; see docs/REPLAY.md.')
    return 0


def _flags(report):
    """Yield ``(flag, event metrics)``: each branch's own flag, then the fused one."""
    for name in ('frame', 'pixel'):
        yield name, report['branches'][name]['events']
    if 'monitor' in report:
        yield 'fused', report['monitor']['events']


def _row(ev, report=None):
    cable = [e['detected'] for e in ev['events'] if e['label'] == 'cable']
    cable = ('yes' if all(cable) else 'no') if cable else '-'
    auprc = ''
    if report is not None and 'pixels' in report['branches']['pixel']:
        auprc = f"{report['branches']['pixel']['pixels']['auprc']:.3f}"
    return (f"{ev['detected']:>3d}/{ev['n_events']:<3d} {cable:>6s} "
            f"{ev['false_alarms']:>3d} ({ev['false_alarms_per_hour']:4.0f}/h) "
            f"{100 * ev['alarm_time_fraction']:7.1f}% {auprc:>12s}")

"""`experiment place`: places learnt from 1 and 3 runs, tested on other runs, every flag."""

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

import json

from anomaly_perception.branches.place import experiment
from anomaly_perception.branches.place.experiment import pool
from anomaly_perception.branches.place.experiment import types_of_test_runs
from anomaly_perception.cli import main
import pytest

# A tiny protocol: 80x60 corridor, normal runs and two 30 s test runs at 2 Hz.
TINY = ['--one-run-seconds', '70', '--three-runs-seconds', '30', '--learn-fps', '2',
        '--test-runs', '2', '--test-seconds', '30', '--test-fps', '2', '--anomaly-rate', '0.5',
        '--pixel-steps', '2', '--frame-epochs', '2', '--density-epochs', '4', '--workers', '1']


@pytest.fixture(scope='module')
def ran(tiny_void_model, tmp_path_factory):
    out = tmp_path_factory.mktemp('place_experiment') / 'exp'
    args = ['experiment', 'place', '--building', 'corridor:7:80x60', '--out', str(out),
            '--init-from', str(tiny_void_model), *TINY]
    assert main(args) == 0
    return out, args


def test_each_model_set_is_scored_on_the_same_test_runs_with_every_flag(ran):
    out, _ = ran
    results = json.loads((out / 'results.json').read_text())
    rows = results['buildings']['corridor_7_80x60']['rows']
    assert set(rows) == {'generic', 'one', 'three'}
    # The generic models have no place, so no fused flag; each place has one.
    assert set(rows['generic']['flags']) == {'frame', 'pixel'}
    assert set(rows['one']['flags']) == set(rows['three']['flags']) == {'frame', 'pixel', 'fused'}
    runs = {p.name for p in (out / 'corridor_7_80x60' / 'runs').iterdir()}
    assert runs == {f'{m}_test{s}.json' for m in ('generic', 'one', 'three') for s in (301, 302)}
    events = {(m, f): (r['n_events'], tuple(sorted(r['per_type'])))
              for m, row in rows.items() for f, r in row['flags'].items()}
    # Every flag saw the same events; the first test run carries the thin hazards only.
    assert len(set(events.values())) == 1
    n_events, types = next(iter(events.values()))
    assert results['buildings']['corridor_7_80x60']['test_types'][0] == 'cable,foam'
    assert n_events >= 2 and {'cable', 'foam'} & set(types)
    for model in ('one', 'three'):
        assert rows[model]['train']['runs'] == (1 if model == 'one' else 3)
        assert 0 < rows[model]['train']['size_mb'] < 40
        assert 0 <= rows[model]['pixel']['auprc'] <= 1
    assert (out / 'results.png').stat().st_size > 0
    md = (out / 'results.md').read_text()
    assert '| three | fused |' in md and '| cable |' in md and 'all buildings' in md


def test_the_fused_flag_is_what_replay_with_the_place_reports(ran, tmp_path):
    out, _ = ran
    root = out / 'corridor_7_80x60'
    run = json.loads((root / 'runs' / 'three_test302.json').read_text())
    assert main(['replay', str(root / 'bags' / 'test302'), '--place', str(root / 'place_three'),
                 '--out', str(tmp_path / 'replay'), '--no-progress']) == 0
    report = json.loads((tmp_path / 'replay' / 'report.json').read_text())
    keys = ('n_events', 'detected', 'false_alarms', 'alarm_time_fraction')
    assert {k: report['monitor']['events'][k] for k in keys} == \
        {k: run['flags']['fused'][k] for k in keys}
    assert {k: report['branches']['frame']['events'][k] for k in keys} == \
        {k: run['flags']['frame'][k] for k in keys}


def test_an_interrupted_experiment_goes_on_from_what_it_kept(ran, monkeypatch):
    out, args = ran

    def must_not_run(*_args, **_kwargs):
        raise AssertionError('a kept run was scored again')

    monkeypatch.setattr(experiment, 'evaluate_run', must_not_run)
    monkeypatch.setattr(experiment, 'train_place_from_bags', must_not_run)
    before = json.loads((out / 'results.json').read_text())['buildings']
    assert main(args) == 0
    assert json.loads((out / 'results.json').read_text())['buildings'] == before


def test_runs_pool_into_events_false_alarms_per_hour_and_flag_time():
    def run(n, det, fa, hours, on, types):
        return {'flags': {'fused': {'n_events': n, 'detected': det, 'false_alarms': fa,
                                    'normal_hours': hours, 'alarm_time_fraction': on,
                                    'events': [{'type': t, 'detected': d} for t, d in types]}},
                'pixel': {'auprc': 0.2 * n, 'fpr95': 0.1}}
    pooled = pool([run(2, 1, 1, 0.25, 0.04, [('cable', True), ('foam', False)]),
                   run(1, 1, 0, 0.75, 0.0, [('cable', True)])])
    fused = pooled['flags']['fused']
    assert (fused['n_events'], fused['detected'], fused['false_alarms']) == (3, 2, 1)
    assert fused['false_alarms_per_hour'] == pytest.approx(1.0)
    assert fused['alarm_time_fraction'] == pytest.approx(0.01)
    assert fused['per_type'] == {'cable': [2, 2], 'foam': [0, 1]}
    assert pooled['pixel']['auprc'] == pytest.approx(0.3)
    assert 'frame' not in pooled['flags']


def test_the_test_runs_share_out_the_environment_types_thin_ones_first():
    corridor = types_of_test_runs('corridor', 5)
    assert corridor[0] == 'cable,foam'
    rest = [t for group in corridor[1:] for t in group.split(',')]
    assert len(rest) == len(set(rest)) and 'cable' not in rest and 'water' in rest
    assert types_of_test_runs('factory', 3)[0] == 'cable'
    tunnel = types_of_test_runs('tunnel', 2)
    assert len(tunnel) == 2 and 'roots' in ','.join(tunnel) and 'cable' not in ','.join(tunnel)


def test_bad_experiment_options_are_refused_in_one_line(tmp_path, capsys):
    assert main(['experiment', 'place', '--building', 'corridor', '--out',
                 str(tmp_path / 'x')]) == 1
    assert 'ENV:SCENE' in capsys.readouterr().err
    assert main(['experiment', 'place', '--building', 'corridor:1', '--out', str(tmp_path / 'x'),
                 '--test-seconds', '0']) == 1
    assert '--test-seconds must be > 0' in capsys.readouterr().err
    assert not (tmp_path / 'x').exists()

"""The RNVP+OE paper's comparisons, reproduced on a dataset of ours.

* Table II: test AUROC of AE-MAE, AE-MSE, RNVP, BCLASS and RNVP+OE, mean and
  standard deviation over seeds. All methods of one seed share that seed's
  autoencoder (as in the paper, the embedding is common).
* Fig. 7: AUROC of RNVP+OE and BCLASS against the number of exposed
  anomalous frames (with 0 exposed, RNVP+OE is plain RNVP and BCLASS is
  undefined).

Two protocols, read from the dataset's manifest (``synth dataset
--test-scenes``): ``unseen`` tests in scenes never used for training (ours,
the harder one), ``seen`` tests on other patrols of the training scenes
(the paper's: same environments, disjoint sequences). Given one dataset per
protocol, :func:`run_protocols` runs both and writes them side by side,
with the paper's orderings (RNVP+OE > RNVP, BCLASS > AE) checked per seed.

Every training step resumes from its checkpoint, so an interrupted run
picks up where it stopped when started again with the same ``out_dir``.
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
import json
from pathlib import Path

import numpy as np

from .train import AutoencoderConfig
from .train import bclass_scores
from .train import cached_embeddings
from .train import ClassifierConfig
from .train import density_scores
from .train import DensityConfig
from .train import load_autoencoder
from .train import load_density
from .train import reconstruction_scores
from .train import select_exposed
from .train import train_autoencoder
from .train import train_bclass
from .train import train_density
from ...data.hazards import default_cache_dir
from ...data.hazards import HazardsDataset
from ...io.files import atomic_write_json
from ...io.files import atomic_write_text
from ...metrics.binary import binary_curve
from ...metrics.binary import per_type_auroc
from ...metrics.plots import bar_plot
from ...metrics.plots import roc_plot
from ...metrics.plots import series_plot
from ...training import TrainingError

METHODS = ('AE-MAE', 'AE-MSE', 'RNVP', 'BCLASS', 'RNVP+OE')
PAPER_AUROC = {'AE-MAE': 0.64, 'AE-MSE': 0.67, 'RNVP': 0.73, 'BCLASS': 0.73, 'RNVP+OE': 0.80}
DEFAULT_EXPOSURES = (0, 2, 8, 64, 512, 'all')
PROTOCOLS = {'unseen': 'test scenes never seen in training (ours)',
             'seen': "other patrols of the training scenes (the paper's)"}
# The paper's orderings (Table II): (better, worse).
PAPER_ORDERINGS = (('RNVP+OE', 'RNVP'), ('BCLASS', 'AE-MSE'), ('BCLASS', 'AE-MAE'))


def dataset_protocol(data_dir):
    """Return the protocol a dataset was made for: its manifest's ``test_scenes``.

    A manifest without the field was written before the option existed, when
    test scenes were always scenes of their own: ``'unseen'``. A dataset
    without a manifest (a user's own) is ``'unknown'``.
    """
    path = Path(data_dir) / 'manifest.json'
    if not path.is_file():
        return 'unknown'
    try:
        manifest = json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise TrainingError(f'{str(path)!r} is not a readable dataset manifest: {err}') from None
    return manifest.get('test_scenes', 'unseen') if isinstance(manifest, dict) else 'unknown'


def _auroc(labels, scores):
    return binary_curve(np.asarray(labels) != 0, scores).auroc()


def run_seed(data, arrays, seed, work, ae_cfg, den_cfg, cls_cfg, exposures, show_progress):
    """Train and score every method for one seed; return a dict of results."""
    ae_dir = work / 'autoencoder'
    train_autoencoder(arrays['train'], arrays['val'][arrays['val_labels'] == 0], ae_dir,
                      dataclasses.replace(ae_cfg, seed=seed), show_progress)
    emb = {k: cached_embeddings(ae_dir, arrays[k], k)
           for k in ('train', 'val', 'test', 'outliers')}
    val_normal = emb['val'][arrays['val_labels'] == 0]
    test_labels = arrays['test_labels']
    scores = {}
    mse, mae = reconstruction_scores(load_autoencoder(ae_dir), arrays['test'])
    scores['AE-MSE'], scores['AE-MAE'] = mse, mae

    def density(name, exposed_idx):
        cfg = dataclasses.replace(den_cfg, seed=seed, oe=exposed_idx is not None)
        anomalies = emb['outliers'][exposed_idx] if exposed_idx is not None else None
        train_density(emb['train'], val_normal, work / name, cfg, anomalies, show_progress)
        return density_scores(*load_density(work / name), emb['test'])

    def classifier(name, exposed_idx):
        train_bclass(emb['train'], emb['outliers'][exposed_idx], emb['val'],
                     arrays['val_labels'] != 0, work / name,
                     dataclasses.replace(cls_cfg, seed=seed), show_progress)
        return bclass_scores(work / name, emb['test'])

    outlier_records = arrays['outlier_records']
    index = {id(r): i for i, r in enumerate(outlier_records)}
    sweep = {'RNVP+OE': {}, 'BCLASS': {}}
    scores['RNVP'] = density('rnvp', None)
    for count in exposures:
        key = str(count)
        if count == 0:
            sweep['RNVP+OE'][key] = _auroc(test_labels, scores['RNVP'])
            sweep['BCLASS'][key] = float('nan')
            continue
        chosen = select_exposed(outlier_records, count, seed)
        idx = np.array([index[id(r)] for r in chosen])
        oe = density(f'rnvp_oe_{key}', idx)
        cls = classifier(f'bclass_{key}', idx)
        sweep['RNVP+OE'][key] = _auroc(test_labels, oe)
        sweep['BCLASS'][key] = _auroc(test_labels, cls)
        if count == 'all':
            scores['RNVP+OE'], scores['BCLASS'] = oe, cls
    if 'RNVP+OE' not in scores:
        raise TrainingError("The exposure sweep must include 'all' (Table II uses it).")
    names = np.array(arrays['test_names'])
    return {
        'seed': seed,
        'auroc': {m: _auroc(test_labels, scores[m]) for m in METHODS},
        'per_type_auroc': {m: per_type_auroc(test_labels, names, scores[m], arrays['test_envs'])
                           for m in METHODS},
        'per_environment_auroc': {
            m: {env: _auroc(test_labels[arrays['test_envs'] == env],
                            scores[m][arrays['test_envs'] == env])
                for env in sorted(set(arrays['test_envs']))} for m in METHODS},
        'sweep': sweep,
        'scores': scores,
    }


def load_arrays(data_dir, size, cache_dir, show_progress):
    data = HazardsDataset(data_dir)
    train = data.records('train_set', anomalous=False)
    val = data.records('validation_set')
    test = data.records('test_set')
    outliers = data.records('outliers_set', anomalous=True)
    for name, recs in (('train_set normals', train), ('validation_set', val),
                       ('test_set', test), ('outliers_set anomalies', outliers)):
        if not recs:
            raise TrainingError(f'{str(data_dir)!r} has no {name}.')
    load = lambda recs: data.load_images(recs, size, cache_dir, show_progress)  # noqa: E731
    return data, {
        'train': load(train), 'val': load(val), 'test': load(test), 'outliers': load(outliers),
        'val_labels': np.array([r.label for r in val]),
        'test_labels': np.array([r.label for r in test]),
        'test_names': [r.label_name for r in test],
        'test_envs': np.array([r.environment or 'unknown' for r in test]),
        'outlier_records': outliers,
    }


def run_frame_baselines(data_dir, out_dir, seeds=(0, 1, 2), ae_config=None, density_config=None,
                        classifier_config=None, exposures=DEFAULT_EXPOSURES, cache_dir=None,
                        show_progress=True):
    """Run Table II and Fig. 7 for ``seeds``; write the report; return the results dict."""
    ae_cfg = ae_config or AutoencoderConfig()
    den_cfg = density_config or DensityConfig()
    cls_cfg = classifier_config or ClassifierConfig()
    out = Path(out_dir)
    data, arrays = load_arrays(data_dir, ae_cfg.input_size, cache_dir or default_cache_dir(),
                               show_progress)
    per_seed = []
    for seed in seeds:
        per_seed.append(run_seed(data, arrays, seed, out / f'seed{seed}', ae_cfg, den_cfg,
                                 cls_cfg, exposures, show_progress))
    table = {m: {'mean': float(np.mean([s['auroc'][m] for s in per_seed])),
                 'std': float(np.std([s['auroc'][m] for s in per_seed])),
                 'per_seed': [s['auroc'][m] for s in per_seed],
                 'paper': PAPER_AUROC[m]} for m in METHODS}
    keys = [str(c) for c in exposures]
    fig7 = {m: {k: {'mean': float(np.nanmean([s['sweep'][m][k] for s in per_seed]))
                    if not all(np.isnan(s['sweep'][m][k]) for s in per_seed) else float('nan'),
                    'std': float(np.nanstd([s['sweep'][m][k] for s in per_seed]))
                    if not all(np.isnan(s['sweep'][m][k]) for s in per_seed) else float('nan')}
                for k in keys} for m in ('RNVP+OE', 'BCLASS')}
    per_type = {m: {t: float(np.mean([s['per_type_auroc'][m][t] for s in per_seed]))
                    for t in per_seed[0]['per_type_auroc'][m]} for m in METHODS}
    per_env = {m: {e: {'mean': float(np.mean([s['per_environment_auroc'][m][e]
                                              for s in per_seed])),
                       'std': float(np.std([s['per_environment_auroc'][m][e]
                                            for s in per_seed]))}
                   for e in per_seed[0]['per_environment_auroc'][m]} for m in METHODS}
    results = {
        'data': str(data_dir), 'protocol': dataset_protocol(data_dir),
        'seeds': list(seeds), 'test_counts': data.counts()['test_set'],
        'config': {'autoencoder': dataclasses.asdict(ae_cfg),
                   'density': dataclasses.asdict(den_cfg),
                   'classifier': dataclasses.asdict(cls_cfg)},
        'table2': table, 'fig7': fig7, 'per_type_auroc_mean': per_type,
        'per_environment_auroc': per_env,
        'orderings': paper_orderings(per_seed, table),
        'per_seed': [{k: v for k, v in s.items() if k != 'scores'} for s in per_seed],
    }
    atomic_write_json(out / 'results.json', results)
    protocol = PROTOCOLS.get(results['protocol'], 'test scenes unknown')
    tables = (format_table2(results), format_per_environment(results), format_per_type(results))
    atomic_write_text(out / 'table2.md',
                      f"Protocol: {results['protocol']} ({protocol})\n\n" + '\n'.join(tables))
    atomic_write_text(out / 'fig7.md', format_fig7(results))
    series_plot(out / 'fig7.png', keys,
                {m: ([fig7[m][k]['mean'] for k in keys], [fig7[m][k]['std'] for k in keys])
                 for m in fig7},
                'exposed anomalous frames', 'test AUROC',
                title=f'AUROC vs exposed anomalies ({len(seeds)} seeds)')
    first = per_seed[0]
    roc_plot(out / 'roc_seed{}.png'.format(first['seed']),
             {m: (arrays['test_labels'], first['scores'][m]) for m in METHODS},
             title=f'Test ROC, seed {first["seed"]}')
    return results


def paper_orderings(per_seed, table):
    """Whether each of the paper's orderings holds, per seed and in the mean."""
    out = []
    for better, worse in PAPER_ORDERINGS:
        wins = [s['auroc'][better] > s['auroc'][worse] for s in per_seed]
        out.append({'better': better, 'worse': worse, 'seeds_holding': int(sum(wins)),
                    'seeds': len(wins),
                    'mean_difference': table[better]['mean'] - table[worse]['mean'],
                    'holds_in_mean': bool(table[better]['mean'] > table[worse]['mean'])})
    return out


def run_protocols(data_dirs, out_dir, seeds=(0, 1, 2), ae_config=None, density_config=None,
                  classifier_config=None, exposures=DEFAULT_EXPOSURES, cache_dir=None,
                  show_progress=True):
    """Run :func:`run_frame_baselines` on one dataset per protocol, side by side.

    One dataset: its results go to ``out_dir`` as before. Several: each to
    ``out_dir/<protocol>``, and ``protocols.json``, ``protocols.md``,
    ``table2_protocols.png`` and ``fig7_protocols.png`` compare them. Returns
    ``{protocol: results}``.

    Raises:
        TrainingError: two datasets of the same protocol (their outputs would
            collide), or a dataset whose protocol is unknown among several.

    """
    if len(data_dirs) == 1:
        results = run_frame_baselines(data_dirs[0], out_dir, seeds, ae_config, density_config,
                                      classifier_config, exposures, cache_dir, show_progress)
        return {results['protocol']: results}
    protocols = [dataset_protocol(d) for d in data_dirs]
    for d, p in zip(data_dirs, protocols):
        if p not in PROTOCOLS:
            raise TrainingError(
                f'{str(d)!r} has no manifest saying which scenes its test split uses; '
                'compare protocols on datasets written by synth dataset --test-scenes.')
    if len(set(protocols)) != len(protocols):
        raise TrainingError(f'Each --data must be a different protocol; got {protocols} for '
                            f'{[str(d) for d in data_dirs]}.')
    out = Path(out_dir)
    everything = {}
    for d, p in zip(data_dirs, protocols):
        everything[p] = run_frame_baselines(d, out / p, seeds, ae_config, density_config,
                                            classifier_config, exposures, cache_dir,
                                            show_progress)
    summary = {p: {'data': r['data'], 'table2': r['table2'], 'fig7': r['fig7'],
                   'orderings': r['orderings'], 'seeds': r['seeds']}
               for p, r in everything.items()}
    atomic_write_json(out / 'protocols.json', summary)
    atomic_write_text(out / 'protocols.md', format_protocols(everything))
    bar_plot(out / 'table2_protocols.png', list(METHODS),
             {f'{p} scenes': ([r['table2'][m]['mean'] for m in METHODS],
                              [r['table2'][m]['std'] for m in METHODS])
              for p, r in everything.items()},
             'test AUROC', title=f'Table II under both protocols ({len(seeds)} seeds)',
             reference=('paper', [PAPER_AUROC[m] for m in METHODS]))
    keys = [str(c) for c in exposures]
    series_plot(out / 'fig7_protocols.png', keys,
                {f'{m}, {p} scenes': ([r['fig7'][m][k]['mean'] for k in keys],
                                      [r['fig7'][m][k]['std'] for k in keys])
                 for p, r in everything.items() for m in ('RNVP+OE', 'BCLASS')},
                'exposed anomalous frames', 'test AUROC',
                title=f'AUROC vs exposed anomalies, both protocols ({len(seeds)} seeds)')
    return everything


def format_protocols(everything):
    """Table II and Fig. 7 with one column per protocol, and the orderings."""
    names = list(everything)
    lines = ['Table II, test AUROC (mean ± std over seeds):', '',
             '| method | ' + ' | '.join(f'{p} scenes' for p in names) + ' | paper |',
             '|---' * (len(names) + 2) + '|']
    for m in METHODS:
        cells = [f"{everything[p]['table2'][m]['mean']:.3f} ± "
                 f"{everything[p]['table2'][m]['std']:.3f}" for p in names]
        lines.append(f'| {m} | ' + ' | '.join(cells) + f' | {PAPER_AUROC[m]:.2f} |')
    lines += ['', "The paper's orderings (seeds where it holds; difference of means):", '',
              '| ordering | ' + ' | '.join(f'{p} scenes' for p in names) + ' |',
              '|---' * (len(names) + 1) + '|']
    for i, (better, worse) in enumerate(PAPER_ORDERINGS):
        cells = []
        for p in names:
            o = everything[p]['orderings'][i]
            cells.append(f"{o['seeds_holding']}/{o['seeds']} seeds, "
                         f"{o['mean_difference']:+.3f}")
        lines.append(f'| {better} > {worse} | ' + ' | '.join(cells) + ' |')
    for p in names:
        lines += ['', f'Fig. 7, {p} scenes ({PROTOCOLS[p]}):', '',
                  format_fig7(everything[p]).rstrip()]
    return '\n'.join(lines) + '\n'


def format_table2(results):
    lines = ['| method | AUROC (mean ± std) | per seed | paper |', '|---|---|---|---|']
    for m, r in results['table2'].items():
        seeds = ', '.join(f'{v:.3f}' for v in r['per_seed'])
        lines.append(f"| {m} | {r['mean']:.3f} ± {r['std']:.3f} | {seeds} | {r['paper']:.2f} |")
    return '\n'.join(lines) + '\n'


def format_per_environment(results):
    envs = list(next(iter(results['per_environment_auroc'].values())))
    lines = ['| method | ' + ' | '.join(envs) + ' |', '|---' * (len(envs) + 1) + '|']
    for m, row in results['per_environment_auroc'].items():
        cells = [f"{row[e]['mean']:.3f} ± {row[e]['std']:.3f}" for e in envs]
        lines.append(f'| {m} | ' + ' | '.join(cells) + ' |')
    return '\n'.join(lines) + '\n'


def format_per_type(results):
    types = list(next(iter(results['per_type_auroc_mean'].values())))
    methods = list(results['per_type_auroc_mean'])
    lines = ['| type | ' + ' | '.join(methods) + ' |', '|---' * (len(methods) + 1) + '|']
    for t in types:
        lines.append(f'| {t} | ' + ' | '.join(f"{results['per_type_auroc_mean'][m][t]:.3f}"
                                              for m in methods) + ' |')
    return '\n'.join(lines) + '\n'


def format_fig7(results):
    keys = list(next(iter(results['fig7'].values())).keys())
    lines = ['| exposed | ' + ' | '.join(keys) + ' |', '|---' * (len(keys) + 1) + '|']
    for m, row in results['fig7'].items():
        cells = []
        for k in keys:
            v = row[k]
            cells.append('n/a' if np.isnan(v['mean']) else f"{v['mean']:.3f} ± {v['std']:.3f}")
        lines.append(f'| {m} | ' + ' | '.join(cells) + ' |')
    return '\n'.join(lines) + '\n'

"""``anomaly-perception experiment failure``: paper 004's Tables III and IV on our test split.

One pass over the test frames of local anomaly types (and normal frames), at
the pixel model's input resolution. A pixel is an *error* where the
segmenter's class (arg-max over the normal classes) differs from the label;
anomaly pixels are errors (the segmenter gives them a normal class); void
outside the image is ignored. Metrics per method
(:class:`~anomaly_perception.metrics.segmentation.FailureDetectionAccumulator`):
AP-Err, AP-Suc, AUROC, FPR95 and the risk-coverage curve.

* **Table III** (one segmenter: the stage-1 pixel model): MSP (``1 - max
  softmax``), MaxLogit (``-max logit``), entropy, MC dropout (``1 - max``
  of the softmax averaged over ``mc_samples`` passes with ERFNet's dropout
  on, batch norm frozen), ``direct`` (a failure model named ``direct``:
  the head on the logit maps alone, segmenter frozen) and FSNet (the
  failure model named ``full``), each method judged on its own
  segmenter's errors (FSNet's joint training changes the segmenter; its
  mIoU is reported next to the stage-1 model's, and MSP on FSNet's
  segmenter is a row too, so the comparison is also made on equal errors).
* With a pixel model that already has a head (``models/pixel_erfnet`` as
  shipped), the baselines judge its jointly trained segmenter and its head
  is the row ``full``: every row then judges the same errors. The stage-1
  model (``train pixel``) gives Table III as the paper sets it.
* **Table IV**: every failure model given (``full``, ``-x``, ``-w1`` ..
  ``-w4``, ``-se``, ``single``, named as ``train failure --ablation``).

Writes ``failure.json``, ``failure.md`` and ``risk_coverage.png``.
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

from pathlib import Path
import time

import numpy as np
import torch

from .fsnet import FSNet
from .fsnet import normal_channels
from ...data.hazards import HazardsDataset
from ...data.synthetic.catalog import GLOBAL_TYPES
from ...errors import AnomalyPerceptionError
from ...io.files import atomic_write_json
from ...io.files import atomic_write_text
from ...metrics.segmentation import ConfusionMatrix
from ...metrics.segmentation import FailureDetectionAccumulator

ERROR_LABEL = 254       # an anomaly pixel's target: no class the segmenter can predict
VOID = 255
BASELINES = ('msp', 'maxlogit', 'entropy', 'mc_dropout')


def baseline_scores(logits, keep):
    """Return the logit baselines' failure scores (higher: more likely wrong), each [N, H, W]."""
    normal = logits[:, keep]
    prob = normal.softmax(1)
    entropy = -(prob * prob.clamp_min(1e-12).log()).sum(1)
    return {'msp': 1 - prob.max(1).values, 'maxlogit': -normal.max(1).values,
            'entropy': entropy}


def mc_dropout_score(network, x, keep, samples, seed=0):
    """``1 - max`` of the mean softmax over ``samples`` passes with dropout on (BN frozen)."""
    network.eval()
    drops = [m for m in network.modules() if isinstance(m, (torch.nn.Dropout, torch.nn.Dropout2d))]
    if not drops:
        raise AnomalyPerceptionError('MC dropout: the segmenter has no dropout layer.')
    gen_state = torch.random.get_rng_state()
    torch.manual_seed(seed)
    try:
        for m in drops:
            m.train()
        mean = 0
        for _ in range(samples):
            mean = mean + network(x)[:, keep].softmax(1)
        mean = mean / samples
    finally:
        for m in drops:
            m.eval()
        torch.random.set_rng_state(gen_state)
    return 1 - mean.max(1).values


def _load(model_dir):
    from ...runtime.network import load_network
    module, manifest = load_network(model_dir, branch='pixel')
    arch = manifest['architecture']
    if arch['type'] == 'erfnet_pixel':
        return module, None, manifest
    if arch['type'] == 'erfnet_pixel_fsnet':
        return module.segmenter, module.head, manifest
    raise AnomalyPerceptionError(f'{str(model_dir)!r}: a {arch["type"]!r} model has no ERFNet '
                                 'logits to judge.')


class _Method:

    def __init__(self):
        self.acc = FailureDetectionAccumulator()

    def result(self):
        return self.acc.results()


def run_failure_experiment(pixel_model, failure_models, data_dir, out_dir, *, split='test_set',
                           every=1, limit=None, mc_samples=8, show_progress=True, batch=8):
    """Run Tables III and IV (module docs); ``failure_models``: ``{name: model_dir}``."""
    from tqdm import tqdm

    from .train import load_pixel_split
    segmenter, head, manifest = _load(pixel_model)
    failure_models = dict(failure_models)
    own = None
    if head is not None:
        # A model with a head (the shipped default): the baselines judge its jointly
        # trained segmenter, and its own head is a row.
        own = 'full' if 'full' not in failure_models else 'pixel model'
        if own in failure_models:
            raise AnomalyPerceptionError(f'{str(pixel_model)!r} has a failure head and the '
                                         f'names {sorted(failure_models)} are taken.')
        failure_models[own] = pixel_model
    shape = tuple(manifest['preprocessing']['input_shape'])
    models = {}
    for name, path in failure_models.items():
        seg, fhead, fman = _load(path)
        if fhead is None:
            raise AnomalyPerceptionError(f'{str(path)!r} ({name}) has no failure head.')
        if tuple(fman['preprocessing']['input_shape']) != shape:
            raise AnomalyPerceptionError(f'{str(path)!r} ({name}) takes '
                                         f"{fman['preprocessing']['input_shape']}, the pixel "
                                         f'model {list(shape)}.')
        models[name] = FSNet(seg.network, fhead).eval()
    data = HazardsDataset(data_dir)
    part = load_pixel_split(data, split, shape, show_progress=show_progress, every=every,
                            exclude_types=GLOBAL_TYPES)
    n = min(len(part.images), limit) if limit else len(part.images)
    outputs = segmenter.network.num_classes
    keep = normal_channels(outputs, segmenter.void_index)
    methods = {m: _Method() for m in BASELINES}
    methods.update({name: _Method() for name in models})
    on_fsnet = {f'msp on {name}': _Method() for name in models if name != own}
    cms = {'stage-1': ConfusionMatrix(len(keep), ignore_index=VOID)}
    cms.update({name: ConfusionMatrix(len(keep), ignore_index=VOID) for name in models})
    started = time.perf_counter()
    with torch.no_grad():
        for start in tqdm(range(0, n, batch), desc='experiment failure', unit='batch',
                          disable=not show_progress, dynamic_ncols=True):
            stop = min(n, start + batch)
            x = torch.from_numpy(part.images[start:stop]).permute(0, 3, 1, 2).float() / 255.0
            labels = part.labels[start:stop]
            target = np.where(part.anomaly[start:stop], ERROR_LABEL, labels)
            logits = segmenter.network(x)
            pred = logits[:, keep].argmax(1).numpy()
            cms['stage-1'].update(pred, labels)
            scores = baseline_scores(logits, keep)
            scores['mc_dropout'] = mc_dropout_score(segmenter.network, x, keep, mc_samples,
                                                    seed=start)
            for name in BASELINES:
                methods[name].acc.update(scores[name].numpy(), pred, target)
            for name, fsnet in models.items():
                flogits, fail = fsnet(x)
                fpred = flogits[:, keep].argmax(1).numpy()
                fail = torch.sigmoid(fail)[:, 0]
                methods[name].acc.update(fail.numpy(), fpred, target)
                if name != own:
                    on_fsnet[f'msp on {name}'].acc.update(
                        baseline_scores(flogits, keep)['msp'].numpy(), fpred, target)
                cms[name].update(fpred, labels)
    wall = time.perf_counter() - started
    report = {
        'pixel_model': str(pixel_model), 'failure_models': {k: str(v) for k, v in
                                                            failure_models.items()},
        'segmenter': 'stage-1' if own is None else f'joint ({own})',
        'data': str(data_dir), 'split': split, 'every': every, 'frames': n,
        'input_shape': list(shape), 'mc_samples': mc_samples,
        'methods': {name: m.result() for name, m in {**methods, **on_fsnet}.items()},
        'miou': {name: cm.miou() for name, cm in cms.items()},
        'wall_s': wall,
    }
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_json(out / 'failure.json', report)
    atomic_write_text(out / 'failure.md', format_failure_report(report) + '\n')
    _risk_coverage_plot(out / 'risk_coverage.png', report)
    report['plot'] = 'risk_coverage.png'
    return report


def _risk_coverage_plot(path, report):
    from ...metrics.plots import _figure
    from ...metrics.plots import _save
    plt, fig, ax = _figure(5.5, 4.0)
    for name, m in report['methods'].items():
        if m['risk_coverage'] and not name.startswith('msp on '):
            cov, risk = zip(*m['risk_coverage'])
            ax.plot(cov, np.asarray(risk) * 100, marker='o', ms=3, label=name)
    ax.set_xlabel('coverage (share of pixels kept, most confident first)')
    ax.set_ylabel('risk: error rate of kept pixels (%)')
    ax.set_title('Risk-coverage')
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return _save(plt, fig, path)


def format_failure_report(report):
    """Markdown tables of an ``experiment failure`` report."""
    def pct(v):
        return '-' if v is None or not np.isfinite(v) else f'{100 * v:.2f}'
    methods = report['methods']
    names = [n for n in ('msp', 'maxlogit', 'entropy', 'mc_dropout', 'direct', 'full')
             if n in methods]
    names += [n for n in ('msp on full', 'msp on direct') if n in methods]
    lines = [f"{report['frames']} frames of {report['split']} (local types and normal) at "
             f"{report['input_shape'][0]}x{report['input_shape'][1]}; the baselines judge "
             f"the {report.get('segmenter', 'stage-1')} segmenter, mIoU "
             f"{pct(report['miou']['stage-1'])}"
             + ''.join(f", of '{k}' {pct(v)}" for k, v in report['miou'].items()
                       if k != 'stage-1'), '',
             '**Table III** (percent)', '',
             '| method | AP-Err | AP-Suc | AUROC | FPR95 | risk at 50 % coverage |',
             '|---|---|---|---|---|---|']
    for name in names:
        m = methods[name]
        rc = {round(c, 1): r for c, r in m['risk_coverage']}
        lines.append(f"| {name} | {pct(m['ap_err'])} | {pct(m['ap_suc'])} | "
                     f"{pct(m['auroc'])} | {pct(m['fpr95'])} | {pct(rc.get(0.5))} |")
    ablations = [n for n in methods if n not in BASELINES and n != 'direct'
                 and not n.startswith('msp on ')]
    if ablations:
        lines += ['', '**Table IV** (AP-Err, percent)', '', '| variant | AP-Err | mIoU |',
                  '|---|---|---|']
        for name in ablations:
            lines.append(f"| {name} | {pct(methods[name]['ap_err'])} | "
                         f"{pct(report['miou'].get(name))} |")
    return '\n'.join(lines)

"""``experiment pixel-losses``: paper 002's Tables 1-4 as one table on our test split.

One encoder stage (always cross-entropy, as in the reference recipe) is
trained once and shared; then, per loss under study, a decoder stage on the
same schedule and data, each written as a complete pixel model directory
(``OUT/models/<loss>``). Each model is then scored with every post-hoc
score from the same logits, so the rows differ only by the loss and the
columns only by the score. This also gives paper 002 the matched
cross-entropy baseline it lacks (its red flag 4).

Metrics on the test split's frames of local anomaly types and normal frames
(global types are left out: their masks are the whole image): pixel AuPRC
(AP) and FPR95 over all valid pixels; SegmentMeIfYouCan's component-level
sIoU, PPV and mean F1* of the binary mask at the score's threshold for a
5 % pixel false-positive rate on the *validation* split's normal pixels
(what the node publishes as ``~/anomaly_mask``); mIoU over the normal
classes. The void-class row of paper 002's Table 3 (study name ``void``):
in the synthetic world the only void pixels are the anomalies, so a void
class must be trained on anomalies, here the anomaly pixels of
``outliers_set``: it is outlier exposure, reported as such beside the
post-hoc scores of models that never saw an anomaly.

Every model directory is reused when present, so an interrupted experiment
started again continues with the next loss (and a loss interrupted mid-way
resumes from its checkpoint).
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
import time

import numpy as np
import torch

from ...io.files import atomic_write_text
from ...metrics.segmentation import ComponentF1Accumulator
from ...metrics.segmentation import ConfusionMatrix
from ...metrics.segmentation import PerTypePixelAccumulator
from ...runtime.manifest import MANIFEST
from ...scoring.pixel import pixel_score
from ...scoring.pixel import PIXEL_SCORES

LOSS_STUDY = ('ce', 'focal', 'eiml+focal', 'logitnorm+focal', 'eiml', 'logitnorm', 'eiml+ce',
              'logitnorm+ce')
STUDY_SCORES = tuple(s for s in PIXEL_SCORES if s != 'void')
VOID_ROW = 'void'   # cross-entropy with a void class trained on outliers_set (outlier exposure)
MASK_FPR = 0.05


def _safe(name):
    return name.replace('+', '_')


def _global_types(data_dir):
    path = Path(data_dir) / 'manifest.json'
    if path.is_file():
        return tuple(json.loads(path.read_text()).get('global_types', ()))
    return ()


def _logits(network, images, batch=32):
    network.eval()
    with torch.no_grad():
        for start in range(0, len(images), batch):
            x = torch.from_numpy(images[start:start + batch]).permute(0, 3, 1, 2).float() / 255.0
            yield start, network(x).float()


def _thresholds(network, val, scores, max_pixels=2_000_000, seed=0, void_index=None):
    """Per score: the value a fraction ``1 - MASK_FPR`` of normal validation pixels stays below."""
    rng = np.random.default_rng(seed)
    kept = {s: [] for s in scores}
    normal = ~val.anomaly
    per_image = max(1, max_pixels // max(1, len(val.images)))
    for start, logits in _logits(network, val.images):
        for s in scores:
            maps = pixel_score(s, logits, void_index).numpy()
            for j, m in enumerate(maps):
                values = m[normal[start + j]]
                if values.size > per_image:
                    values = rng.choice(values, per_image, replace=False)
                kept[s].append(values)
    return {s: float(np.quantile(np.concatenate(kept[s]), 1.0 - MASK_FPR)) for s in scores}


def evaluate_scores(network, test, num_classes, thresholds, scores=STUDY_SCORES,
                    void_index=None):
    """Pixel AP / FPR95 / AUROC, component F1* and mIoU of every score, from one forward pass.

    Per anomaly type: that type's anomaly pixels against the normal pixels
    of every test frame.
    """
    acc = {s: PerTypePixelAccumulator() for s in scores}
    comp = {s: ComponentF1Accumulator() for s in scores}
    cm = ConfusionMatrix(num_classes, ignore_index=255)
    for start, logits in _logits(network, test.images):
        n = len(logits)
        truth = test.anomaly[start:start + n].astype(np.uint8)
        keep = [c for c in range(logits.shape[1]) if c != void_index]
        cm.update(logits[:, keep].argmax(1).numpy(), test.labels[start:start + n])
        for s in scores:
            maps = pixel_score(s, logits, void_index).numpy()
            for j in range(n):
                inst = None if test.instances is None else test.instances[start + j]
                comp[s].update(truth[j], maps[j] > thresholds[s], inst)
                acc[s].update(truth[j], maps[j], test.types[start + j])
    out = {'miou': cm.miou(), 'iou': [float(v) for v in cm.iou()], 'scores': {}}
    for s in scores:
        curve = acc[s].curve()
        components = comp[s].results()
        types = acc[s].per_type()
        out['scores'][s] = {
            'auprc': curve.average_precision(), 'fpr95': curve.fpr_at_tpr(0.95),
            'auroc': curve.auroc(), 'f1_star': components['f1_star'],
            'mean_siou': components['mean_siou'], 'mean_ppv': components['mean_ppv'],
            'threshold': thresholds[s], 'per_type': types}
    return out


def run_pixel_losses(data_dir, out_dir, config, loss_names=LOSS_STUDY, cache_dir=None,
                     show_progress=True, command=None, evaluate=True):
    """Train (or reuse) one model per loss on a shared encoder stage; evaluate all scores."""
    from .train import DEFAULT_CLASSES
    from .train import load_pixel_split
    from .train import train_pixel_model
    from .train import train_stages
    from ...data.hazards import default_cache_dir
    from ...data.hazards import HazardsDataset
    from ...runtime.network import load_network
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    cache_dir = cache_dir or default_cache_dir()
    data = HazardsDataset(data_dir)
    shape = tuple(config.input_shape)
    manifest_path = Path(data_dir) / 'manifest.json'
    classes = list(DEFAULT_CLASSES)
    if manifest_path.is_file():
        classes = list(json.loads(manifest_path.read_text()).get('semantic_classes', classes))
    timings = {}
    encoder_work = out / 'work' / 'encoder'
    encoder_ckpt = encoder_work / 'checkpoint.pt'
    encoder_config = dataclasses.replace(config, loss='ce', decoder_epochs=0)
    started = time.perf_counter()
    if not _encoder_done(encoder_ckpt):
        train = load_pixel_split(data, 'train_set', shape, cache_dir, show_progress,
                                 every=config.train_every)
        val = load_pixel_split(data, 'validation_set', shape, cache_dir, show_progress)
        train_stages(train, val, len(classes), encoder_work, encoder_config, show_progress)
        del train, val
    timings['encoder_s'] = time.perf_counter() - started
    for loss in loss_names:
        model_dir = out / 'models' / _safe(loss)
        if (model_dir / MANIFEST).is_file():
            continue
        started = time.perf_counter()
        train_pixel_model(data_dir, model_dir, out / 'work' / _safe(loss),
                          study_config(config, loss), cache_dir=cache_dir,
                          show_progress=show_progress, command=command,
                          encoder_from=encoder_ckpt)
        timings[f'{loss}_s'] = time.perf_counter() - started
    if not evaluate:
        return None
    skip = _global_types(data_dir)
    val = load_pixel_split(data, 'validation_set', shape, cache_dir, show_progress)
    test = load_pixel_split(data, 'test_set', shape, cache_dir, show_progress,
                            exclude_types=skip, instances=True)
    results = {'data': str(data_dir), 'command': command, 'input_shape': list(shape),
               'excluded_types': list(skip), 'test_frames': len(test.images),
               'mask_fpr': MASK_FPR, 'losses': {}}
    for loss in loss_names:
        model_dir = out / 'models' / _safe(loss)
        segmenter, manifest = load_network(model_dir, branch='pixel')
        network, void_index = segmenter.network, segmenter.void_index
        scores = STUDY_SCORES + (('void',) if void_index is not None else ())
        thresholds = _thresholds(network, val, scores, void_index=void_index)
        row = evaluate_scores(network, test, len(classes), thresholds, scores, void_index)
        row['validation'] = manifest['metrics']['validation']
        row['wall_s'] = manifest['provenance']['wall_s']
        results['losses'][loss] = row
    atomic_write_text(out / 'pixel_losses.json', json.dumps(results, indent=2))
    atomic_write_text(out / 'pixel_losses.md', format_loss_table(results))
    from ...metrics.plots import bar_plot
    names = list(results['losses'])
    bar_plot(out / 'pixel_losses.png', names,
             {s: ([results['losses'][n]['scores'][s]['auprc'] for n in names],
                  [0.0] * len(names)) for s in STUDY_SCORES},
             'pixel AuPRC (test, local types)',
             title='Each loss x each score (paper 002 Tables 1-4)')
    return results


def study_config(config, name):
    """Return the training config of a study row: a loss, or ``void`` (CE + void class, OE)."""
    if name == VOID_ROW:
        return dataclasses.replace(config, loss='ce', void_outliers=True, score='void')
    return dataclasses.replace(config, loss=name)


def _encoder_done(ckpt):
    if not ckpt.is_file():
        return False
    from ...training import load_checkpoint
    return load_checkpoint(ckpt)['state']['stage'] >= 1


def format_loss_table(results):
    """Markdown: one row per (loss, score); AuPRC, FPR95, F1*, sIoU, PPV, mIoU."""
    lines = ['| loss | score | pixel AuPRC | FPR95 | mean F1* | sIoU | PPV | mIoU |',
             '|---|---|---:|---:|---:|---:|---:|---:|']
    for loss, row in results['losses'].items():
        for s, m in row['scores'].items():
            lines.append(f'| {loss} | {s} | {m["auprc"]:.3f} | {m["fpr95"]:.3f} | '
                         f'{m["f1_star"]:.3f} | {m["mean_siou"]:.3f} | {m["mean_ppv"]:.3f} | '
                         f'{row["miou"]:.3f} |')
    return '\n'.join(lines) + '\n'

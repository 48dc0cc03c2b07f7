"""The peer row of ``experiment pixel-place``: anomalib's DRAEM on the same place frames.

DRAEM (Zavrtanik et al., ICCV 2021) is a reconstructive network and a
discriminative network trained from scratch on normal images with
simulated anomalies (Perlin-noise shapes blended in); its anomaly map is
the discriminator's anomaly probability. It needs no downloaded weights,
so it is the fair peer of learning a place from its normal driving.

It comes from anomalib (the optional ``peer`` extra, used by this
experiment only: ``pip install -e '.[peer]'``); anomalib's own networks,
loss and anomaly generator are used in a plain loop, without its Lightning
trainer (whose DRAEM downloads the DTD texture set: not possible here, and
the Perlin-only generator needs none).

Two departures from the paper, both forced by 2 CPU cores and both written
into the results: the networks are narrower (``base_width`` 32 and 16
instead of 128 and 64: the full model takes ~14 s per 4-image step on one
core) and training stops after the same wall time as ``train pixel
--bag``. The 144x256 letterboxed input is padded to 160x256 (DRAEM's
discriminator needs multiples of 32).
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

import time

import numpy as np

from ...runtime.preprocess import from_input
from ...runtime.preprocess import letterbox

RECONSTRUCTIVE_WIDTH = 32
DISCRIMINATIVE_WIDTH = 16
BUDGET_S = 400.0


def available():
    """Return ``(True, version)`` when anomalib imports, else ``(False, why)``."""
    try:
        import anomalib
    except ImportError as err:
        return False, (f'anomalib is not installed ({err}); pip install -e ".[peer]" in an '
                       'environment of its own')
    return True, getattr(anomalib, '__version__', '?')


def _pad(height, multiple=32):
    """Rows to add ``(top, bottom)`` so that ``height`` becomes a multiple of ``multiple``."""
    total = (-height) % multiple
    return total // 2, total - total // 2


def build_draem():
    """Build anomalib's DRAEM with the narrower networks of the module docs."""
    from anomalib.models.image.draem.torch_model import DiscriminativeSubNetwork
    from anomalib.models.image.draem.torch_model import DraemModel
    from anomalib.models.image.draem.torch_model import ReconstructiveSubNetwork
    model = DraemModel(sspcab=False)
    model.reconstructive_subnetwork = ReconstructiveSubNetwork(base_width=RECONSTRUCTIVE_WIDTH)
    model.discriminative_subnetwork = DiscriminativeSubNetwork(
        in_channels=6, out_channels=2, base_width=DISCRIMINATIVE_WIDTH)
    return model


def train_draem(images, *, budget_s=BUDGET_S, batch=8, seed=0, show_progress=True):
    """Train DRAEM on uint8 ``[N, h, w, 3]`` normal frames for ``budget_s``: ``(model, info)``."""
    import torch
    import torch.nn.functional as F
    from anomalib.data.utils.generators.perlin import PerlinAnomalyGenerator
    from anomalib.models.image.draem.loss import DraemLoss
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    model = build_draem()
    generator = PerlinAnomalyGenerator(anomaly_source_path=None, blend_factor=(0.1, 1.0))
    loss_fn = DraemLoss()
    opt = torch.optim.Adam(model.parameters(), lr=1e-4)
    top, bottom = _pad(images.shape[1])
    model.train()
    steps, started, losses = 0, time.perf_counter(), []
    from tqdm import tqdm
    bar = tqdm(total=int(budget_s), unit='s', desc='peer (DRAEM)', disable=not show_progress,
               dynamic_ncols=True)
    while time.perf_counter() - started < budget_s:
        idx = rng.integers(0, len(images), batch)
        x = torch.from_numpy(images[idx]).permute(0, 3, 1, 2).float() / 255.0
        x = F.pad(x, (0, 0, top, bottom), mode='reflect')
        if rng.random() < 0.5:
            x = x.flip(-1)
        augmented, mask = generator(x)
        reconstruction, prediction = model(augmented)
        loss = loss_fn(x, reconstruction, mask, prediction)
        opt.zero_grad()
        loss.backward()
        opt.step()
        steps += 1
        losses.append(float(loss))
        bar.n = min(int(budget_s), int(time.perf_counter() - started))
        bar.set_postfix(step=steps, loss=f'{np.mean(losses[-20:]):.3f}')
    bar.close()
    model.eval()
    info = {'steps': steps, 'batch': batch, 'train_wall_s': time.perf_counter() - started,
            'final_loss': float(np.mean(losses[-20:])) if losses else float('nan'),
            'widths': [RECONSTRUCTIVE_WIDTH, DISCRIMINATIVE_WIDTH]}
    return model, info


def draem_scorer(model, shape):
    """Return the ``score_batch`` of :func:`~.place_eval.evaluate_bag`: maps at the image size."""
    import torch
    import torch.nn.functional as F

    def score(stamps, images):
        batch = np.stack([letterbox(i, shape) for i in images])
        x = torch.from_numpy(batch).permute(0, 3, 1, 2).float() / 255.0
        top, bottom = _pad(batch.shape[1])
        x = F.pad(x, (0, 0, top, bottom), mode='reflect')
        with torch.no_grad():
            maps = model(x).anomaly_map[:, top:top + shape[0]].numpy()
        return [(from_input(m.astype(np.float32), i.shape[:2]), None, None)
                for m, i in zip(maps, images)]
    return score


def peer_row(bags, work, keep_examples, show_progress=True, budget_s=BUDGET_S):
    """Train DRAEM on the normal bag's frames, score the test bag: ``(row, examples)``."""
    from .place_eval import evaluate_bag
    from ...data.bag_frames import cached_bag_frames
    ok, why = available()
    if not ok:
        return {'error': why}, {}
    shape = (144, 256)
    frames, _ = cached_bag_frames([str(bags['normal'])], shape, work,
                                  show_progress=show_progress)
    model, info = train_draem(frames.images, budget_s=budget_s, show_progress=show_progress)
    row, examples = evaluate_bag(bags['test'], draem_scorer(model, shape),
                                 keep_examples=keep_examples)
    row.update({'method': f'anomalib {why} DRAEM (narrow, {budget_s:.0f} s budget)', **info})
    return row, examples

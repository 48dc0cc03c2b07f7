"""``score``: image files through a branch's model; what is written is the branch's own."""

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

from .common import resolve_branch
from ..errors import UsageError
from ..io.files import image_files


def add_score(sub):
    p = sub.add_parser('score', help="score images with a branch's model",
                       description='Score image files (or folders of them) with a model. '
                                   'Frame branch: one row per image with the raw score (NLL, '
                                   'nats), the calibrated probability and the hazard flag. '
                                   'Pixel branch: per image the anomaly map, semantic ids and '
                                   'an overlay in --out.')
    p.add_argument('paths', nargs='+', help='image files or folders')
    p.add_argument('--model', default=None,
                   help="model directory (default: the branch's shipped model; the frame "
                        'branch: models/frame_rnvp_oe)')
    from ..branches.registry import branch_names
    p.add_argument('--branch', choices=branch_names(),
                   help="which branch's pipeline (default: the --model's, else frame)")
    p.add_argument('--csv', help='frame branch: also write the rows to this CSV file')
    p.add_argument('--out', help='pixel branch: directory for <stem>.anomaly.npy (float32 '
                                 'at the input resolution, higher = more anomalous), '
                                 '<stem>.semantic.png and <stem>.overlay.jpg')
    p.add_argument('--target-fpr', type=float, help="override the model's threshold target")
    p.add_argument('--pixel-model', default=None,
                   help='instance branch: the pixel model whose map drives the prompts '
                        '(default models/pixel_erfnet); --model is then the promptable '
                        'segmenter (default components: no promptable model, the regions of '
                        'the thresholded map; models/instance_sam_small is the trained '
                        'one). Writes per image '
                        '<stem>.instances.png (uint16 ids, 0 = none), <stem>.instances.json '
                        '(score and box per id), <stem>.anomaly.npy (the refined map) and '
                        '<stem>.overlay.jpg to --out')
    p.add_argument('--prompt-fpr', type=float, default=None,
                   help='instance branch: prompts where the pixel map is above its '
                        'calibrated threshold at this pixel false-positive rate (default 0.05)')
    p.add_argument('--instance-fpr', type=float, default=None,
                   help='instance branch: keep an instance only when its score is above the '
                        'pixel threshold at this false-positive rate (default 0, the '
                        "node's: the pixel model's own mask threshold; 1 keeps every mask, "
                        'UGainS as published)')
    p.add_argument('--backend', default='torch',
                   help='torch, onnxruntime, tensorrt or auto (default torch)')
    p.set_defaults(run=_run_score)


def _run_score(args):
    files = image_files(args.paths)
    branch, model = resolve_branch(args.branch, args.model)
    if isinstance(branch.score, str):
        raise UsageError(f'score --branch {branch.name}: {branch.score}')
    if branch.score is None:
        raise UsageError(f'score has no output for the {branch.name!r} branch.')
    return branch.score(model, files, args)

"""``export``, ``import-sam`` and ``bench``: ONNX graphs, users' SAM weights and speed."""

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

from .common import add_branch_option
from .common import positive_int
from .common import resolve_branch
from ..errors import UsageError

# promptable.SAM_VARIANTS' keys (a test keeps them equal; the parser imports no torch).
SAM_VARIANT_NAMES = ('vit_b', 'vit_h', 'vit_l', 'vit_t')


def add_export(sub):
    p = sub.add_parser('export', help='export a model to ONNX (recorded in its manifest)',
                       description="Write the model's ONNX graph into its directory "
                                   '(model.onnx, or model_fp16.onnx) and record file, sha256, '
                                   'opset and input/output names and shapes in the manifest. '
                                   "The frame graph takes uint8 images at the model's input "
                                   'size (batch dynamic) and returns the raw score.')
    p.add_argument('--model', required=True, help='model directory')
    p.add_argument('--opset', type=positive_int, default=17, help='ONNX opset (17)')
    p.add_argument('--fp16', action='store_true', help='fp16 weights and convolutions')
    p.add_argument('--fp16-weights', action='store_true',
                   help='then store the weights file and the fp32 graph with float16 weights '
                        '(the directory halves; the arithmetic stays float32)')
    p.set_defaults(run=_run_export)


def _run_export(args):
    from ..runtime.export import export_model
    entry = export_model(args.model, opset=args.opset, fp16=args.fp16)
    shape = 'x'.join(str(v) for v in entry['inputs'][0]['shape'])
    print(f"written {args.model}/{entry['file']} (opset {entry['opset']}, {entry['precision']}, "
          f"input {entry['inputs'][0]['name']} {entry['inputs'][0]['dtype']} [{shape}], "
          f"sha256 {entry['sha256'][:12]}...)")
    if args.fp16_weights:
        from ..runtime.export import store_fp16_weights
        manifest = store_fp16_weights(args.model)
        total = sum(f['bytes'] for f in manifest['files'].values())
        print(f'stored {args.model} with float16 weights: {total / 1e6:.1f} MB in all')
    return 0


def add_import_sam(sub):
    p = sub.add_parser('import-sam', help='make a promptable model directory of an official '
                                          'SAM or MobileSAM checkpoint',
                       description='Load an official checkpoint into its architecture (a '
                                   'file of another variant, or a truncated one, is refused '
                                   'with the file named) and write a model directory the '
                                   "instance branch loads: the instance node's model_dir, "
                                   'score --branch instance --model, experiment ugains '
                                   '--promptable.')
    p.add_argument('checkpoint', help="the checkpoint file (Meta's sam_vit_b_01ec64.pth, "
                                      'sam_vit_l_0b3195.pth, sam_vit_h_4b8939.pth; '
                                      "MobileSAM's mobile_sam.pt)")
    p.add_argument('--variant', required=True, choices=SAM_VARIANT_NAMES,
                   help='vit_b, vit_l, vit_h (SAM) or vit_t (MobileSAM)')
    p.add_argument('--out', required=True, help='the model directory to write')
    p.add_argument('--overwrite', action='store_true', help='replace an existing directory')
    p.set_defaults(run=_run_import_sam)


def _run_import_sam(args):
    from ..branches.instance.promptable import import_sam_checkpoint
    manifest = import_sam_checkpoint(args.checkpoint, args.variant, args.out,
                                     overwrite=args.overwrite)
    size = sum(f['bytes'] for f in manifest['files'].values())
    print(f'written {args.out} (SAM {args.variant}, {size / 1e6:.1f} MB): '
          f'model_dir:={args.out} for the instance node')
    return 0


def add_bench(sub):
    p = sub.add_parser('bench', help="measure a branch's path on each backend",
                       description="Warm up, then time a branch's whole path (640x360 bgr8 "
                                   'frames -> scores) and the model alone for each backend '
                                   'and batch size: median/p90/p99 latency, throughput, '
                                   'memory, and the ratio to PyTorch eager on the same device.')
    p.add_argument('--model', help="model directory (default: the branch's shipped model)")
    add_branch_option(p)
    p.add_argument('--backend', default='torch,onnxruntime,tensorrt,auto',
                   help='comma-separated backends (default: all four)')
    p.add_argument('--batch', default='1,8,32', help='comma-separated batch sizes')
    p.add_argument('--seconds', type=float, default=3.0, help='timing per case (3)')
    p.add_argument('--device', default='cpu', help="torch device: 'cpu' or 'cuda'")
    p.add_argument('--precision', default='fp32', choices=['fp32', 'fp16'])
    p.add_argument('--json', help='write the results here too (default out/bench/)')
    p.set_defaults(run=_run_bench)


def _run_bench(args):
    from pathlib import Path

    from ..io.files import atomic_write_json
    from ..runtime.bench import format_table
    from ..runtime.bench import run_bench
    branch, model = resolve_branch(args.branch, args.model)
    if isinstance(branch.bench, str):
        raise UsageError(f'bench --branch {branch.name}: {branch.bench}')
    backends = [b.strip() for b in args.backend.split(',') if b.strip()]
    batches = [int(b) for b in args.batch.split(',')]
    results = run_bench(branch, model, backends, batches, args.seconds, device=args.device,
                        precision=args.precision)
    print(format_table(results))
    out = Path(args.json or Path('out') / 'bench' / f'bench_{Path(model).name}.json')
    atomic_write_json(out, results)
    print(f'written {out}')
    return 0

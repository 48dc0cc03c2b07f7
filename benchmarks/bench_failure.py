"""Benchmark FSNet's failure head: the latency it adds to the pixel graph, in one run.

On the same machine and input, the pixel graph without the head (the
segmenter alone: uint8 in -> anomaly map and class ids out) is the
reference; the same segmenter with the failure head (the
``erfnet_pixel_fsnet`` graph: also the failure probability) is timed next
to it, PyTorch eager and ONNX Runtime (both exported here), batch 1, at
the shipped pixel model's input (144x256) and at 640x360. The ratio with /
without is the figure. ``--failure-model`` times a trained model; by
default ``models/pixel_erfnet``'s own head when it has one (as shipped),
else a head with random weights built on it (the timing does not depend
on them). With ``--cuda``: PyTorch eager on the
GPU, fp32 and fp16.

Run: ``python benchmarks/bench_failure.py``.
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
from pathlib import Path
import sys

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import measure  # noqa: E402, I100
from common import write_report  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def _ms(stats):
    return {k[:-2]: v * 1e3 for k, v in stats.items() if k.endswith('_s')}


def models(pixel_dir, failure_dir):
    """``(segmenter alone, segmenter with its head, the fsnet architecture)`` in eval mode."""
    from anomaly_perception.branches.pixel.fsnet import _build_from_manifest
    from anomaly_perception.runtime.network import architecture_of
    from anomaly_perception.runtime.network import load_network
    if not failure_dir:
        from anomaly_perception.runtime.manifest import load_manifest
        kind = load_manifest(pixel_dir, verify=False)['architecture']['type']
        failure_dir = pixel_dir if kind == 'erfnet_pixel_fsnet' else ''   # shipped with a head
    if failure_dir:
        both, manifest = load_network(failure_dir, branch='pixel')
        plain = both.segmenter
    else:
        plain, manifest = load_network(pixel_dir, branch='pixel')
        arch = {**manifest['architecture'], 'type': 'erfnet_pixel_fsnet', 'failure_head': {}}
        both = _build_from_manifest(arch)
        both.segmenter.load_state_dict(plain.state_dict())
        manifest = {**manifest, 'architecture': arch}
    return plain.eval(), both.eval(), architecture_of('bench', manifest)


def cpu_speeds(plain, both, arch, shape, seconds):
    """Eager and ONNX Runtime ms at ``shape``, without and with the head."""
    from anomaly_perception.branches.pixel.model import ARCHITECTURE as PIXEL
    from anomaly_perception.runtime.export import to_onnx_bytes
    import onnxruntime as ort
    h, w = shape
    images = np.random.default_rng(0).integers(0, 256, (1, h, w, 3), dtype=np.uint8)
    x = torch.from_numpy(images)
    out = {}
    for name, module, a in (('segmenter', plain, PIXEL), ('with_head', both, arch)):
        with torch.inference_mode():
            out[f'eager_{name}_ms'] = _ms(measure(lambda: module(x), seconds=seconds))
        options = ort.SessionOptions()
        options.intra_op_num_threads = torch.get_num_threads()
        sess = ort.InferenceSession(to_onnx_bytes(module, x, a), options,
                                    providers=['CPUExecutionProvider'])
        feed = {sess.get_inputs()[0].name: images}
        out[f'onnxruntime_{name}_ms'] = _ms(measure(lambda: sess.run(None, feed),
                                                    seconds=seconds))
    for runtime in ('eager', 'onnxruntime'):
        out[f'{runtime}_ratio_with_over_without'] = (
            out[f'{runtime}_with_head_ms']['median'] / out[f'{runtime}_segmenter_ms']['median'])
    return out


def cuda_speeds(plain, both, shape, seconds):
    """Time eager PyTorch on the GPU, fp32 and fp16, batch 1, without and with the head."""
    import copy
    h, w = shape
    x = torch.randint(0, 256, (1, h, w, 3), dtype=torch.uint8, device='cuda')
    out = {'device': torch.cuda.get_device_name()}
    for precision in ('fp32', 'fp16'):
        for name, module in (('segmenter', plain), ('with_head', both)):
            m = copy.deepcopy(module).cuda()
            if precision == 'fp16':
                m = m.half_precision()

            def run():
                with torch.inference_mode():
                    m(x)
                torch.cuda.synchronize()
            out[f'{precision}_{name}_ms'] = _ms(measure(run, seconds=seconds, warmup=10))
        out[f'{precision}_ratio_with_over_without'] = (
            out[f'{precision}_with_head_ms']['median'] /
            out[f'{precision}_segmenter_ms']['median'])
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--pixel-model', default=str(ROOT / 'models' / 'pixel_erfnet'))
    parser.add_argument('--failure-model', default='',
                        help='a train failure model (default: a random head on --pixel-model)')
    parser.add_argument('--seconds', type=float, default=5.0)
    parser.add_argument('--threads', type=int, default=None)
    parser.add_argument('--cuda', action='store_true', help='also PyTorch on the GPU')
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    plain, both, arch = models(args.pixel_model, args.failure_model)
    results = {'torch_threads': torch.get_num_threads(),
               'failure_model': args.failure_model or 'random head on ' + args.pixel_model}
    for shape in ((144, 256), (360, 640)):
        key = f'cpu_{shape[0]}x{shape[1]}'
        results[key] = r = cpu_speeds(plain, both, arch, shape, args.seconds)
        print(f'{shape[0]}x{shape[1]} batch 1, median ms without / with the failure head: '
              f"eager {r['eager_segmenter_ms']['median']:.1f} / "
              f"{r['eager_with_head_ms']['median']:.1f} "
              f"({r['eager_ratio_with_over_without']:.2f}x), ONNX Runtime "
              f"{r['onnxruntime_segmenter_ms']['median']:.1f} / "
              f"{r['onnxruntime_with_head_ms']['median']:.1f} "
              f"({r['onnxruntime_ratio_with_over_without']:.2f}x)")
        if args.cuda:
            g = cuda_speeds(plain, both, shape, args.seconds)
            results[f'cuda_{shape[0]}x{shape[1]}'] = g
            print(f"  {g['device']}: fp32 {g['fp32_segmenter_ms']['median']:.2f} / "
                  f"{g['fp32_with_head_ms']['median']:.2f} ms, fp16 "
                  f"{g['fp16_segmenter_ms']['median']:.2f} / "
                  f"{g['fp16_with_head_ms']['median']:.2f} ms")
    print('written', write_report('failure', results))


if __name__ == '__main__':
    main()

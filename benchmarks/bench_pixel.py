"""Benchmark the pixel branch: ERFNet eager PyTorch vs ONNX Runtime, and the whole pipeline.

In one run, on the same machine:

* the pixel graph (uint8 in -> anomaly map and class ids out: ERFNet, the
  score and the arg-max) at the shipped model's resolution and at 640x360,
  PyTorch eager vs ONNX Runtime (exported here, at batch 1 and 8; the
  ratio exported / eager is the figure the issue asks for);
* the whole pipeline (``PixelStream.process``: letterbox, resize, the
  model, maps back at the frame's resolution, calibration, mask) on one
  640x360 frame and on one 640x480 frame (a 4:3 camera, letterboxed), per
  backend: frames per second;
* with ``--cuda`` (a GPU machine): ERFNet at 512x1024, fp16, PyTorch eager
  and CUDA graphs via ``torch.compile(mode='reduce-overhead')``, batch 1.

Run: ``python benchmarks/bench_pixel.py`` (or ``make bench``).
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
import dataclasses
from pathlib import Path
import sys
import tempfile

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import measure  # noqa: E402, I100
from common import write_report  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def _ms(stats):
    """Return timing statistics in milliseconds: ``median_s`` -> ``median`` and so on."""
    return {k[:-2]: v * 1e3 for k, v in stats.items() if k.endswith('_s')}


def graph_speeds(model_dir, shape, batches, seconds):
    """Median ms per batch of the pixel graph at ``shape``: eager vs ONNX Runtime."""
    from anomaly_perception.runtime.export import DEFAULT_OPSET
    from anomaly_perception.runtime.export import to_onnx_bytes
    from anomaly_perception.runtime.network import architecture_of
    from anomaly_perception.runtime.network import load_network
    import onnxruntime as ort
    module, manifest = load_network(model_dir, branch='pixel')
    arch = architecture_of(model_dir, manifest)
    example = torch.zeros(2, *shape, 3, dtype=torch.uint8)
    options = ort.SessionOptions()
    options.intra_op_num_threads = torch.get_num_threads()
    session = ort.InferenceSession(to_onnx_bytes(module, example, arch, DEFAULT_OPSET),
                                   options, providers=['CPUExecutionProvider'])
    name = session.get_inputs()[0].name
    out = {}
    rng = np.random.default_rng(0)
    for batch in batches:
        x = rng.integers(0, 256, (batch, *shape, 3), dtype=np.uint8)
        with torch.inference_mode():
            xt = torch.from_numpy(x)
            eager = measure(lambda: module(xt), seconds=seconds)
        exported = measure(lambda: session.run(None, {name: x}), seconds=seconds)
        out[f'batch{batch}'] = {
            'eager_ms': _ms(eager), 'onnxruntime_ms': _ms(exported),
            'eager_frames_per_s': batch / eager['median_s'],
            'onnxruntime_frames_per_s': batch / exported['median_s'],
            'ratio_onnxruntime_over_eager': eager['median_s'] / exported['median_s']}
    return out


def pipeline_speeds(model_dir, seconds, size=(360, 640)):
    """Frames/s of ``PixelStream.process`` on one frame of ``size`` (h, w), per backend."""
    from anomaly_perception.branches.pixel.config import PixelNodeConfig
    from anomaly_perception.branches.pixel.stream import PixelStream
    from anomaly_perception.runtime.export import export_model
    import shutil
    frame = np.random.default_rng(1).integers(0, 256, (*size, 3), dtype=np.uint8)
    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        copy = Path(tmp) / 'model'
        shutil.copytree(model_dir, copy)
        if not (copy / 'model.onnx').is_file():
            export_model(copy)
        for backend in ('torch', 'onnxruntime'):
            stream = PixelStream.from_config(dataclasses.replace(
                PixelNodeConfig(), backend=backend, model_dir=str(copy)))
            stats = measure(lambda: stream.process([0], [frame]), seconds=seconds)
            out[backend] = {'ms': _ms(stats), 'frames_per_s': 1.0 / stats['median_s']}
    return out


def cuda_speeds(seconds):
    """Time ERFNet (20 classes) at 512x1024 fp16 on CUDA: eager vs CUDA graphs (compile)."""
    from anomaly_perception.models.erfnet import ERFNet
    net = ERFNet(20).cuda().half().eval()
    x = torch.randn(1, 3, 512, 1024, device='cuda', dtype=torch.half)

    def timed(fn):
        def run():
            fn(x)
            torch.cuda.synchronize()
        return measure(run, seconds=seconds, warmup=10)

    out = {'device': torch.cuda.get_device_name()}
    with torch.inference_mode():
        eager = timed(net)
        out['eager_frames_per_s'] = 1.0 / eager['median_s']
        out['eager_ms'] = _ms(eager)
    compiled = torch.compile(net, mode='reduce-overhead')
    with torch.inference_mode():
        graphs = timed(compiled)
    out['cuda_graphs_frames_per_s'] = 1.0 / graphs['median_s']
    out['cuda_graphs_ms'] = _ms(graphs)
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--model', default=str(ROOT / 'models' / 'pixel_erfnet'))
    parser.add_argument('--threads', type=int, default=None,
                        help='torch / ONNX Runtime threads (default: torch decides)')
    parser.add_argument('--seconds', type=float, default=3.0)
    parser.add_argument('--cuda', action='store_true', help='also ERFNet 512x1024 fp16 on GPU')
    parser.add_argument('--cuda-only', action='store_true', help='only the GPU measurement')
    args = parser.parse_args()
    args.cuda = args.cuda or args.cuda_only
    if args.threads:
        torch.set_num_threads(args.threads)
    from anomaly_perception.runtime.manifest import load_manifest
    shape = tuple(load_manifest(args.model, branch='pixel')['preprocessing']['input_shape'])
    results = {'model': Path(args.model).name, 'torch_threads': torch.get_num_threads(),
               'model_input': list(shape)}
    if not args.cuda_only:
        results['graph_model_resolution'] = graph_speeds(args.model, shape, (1, 8),
                                                         args.seconds)
        results['graph_640x360'] = graph_speeds(args.model, (360, 640), (1, 8), args.seconds)
        results['pipeline_640x360'] = pipeline_speeds(args.model, args.seconds)
        results['pipeline_640x480'] = pipeline_speeds(args.model, args.seconds, (480, 640))
    if args.cuda:
        results['cuda_512x1024_fp16'] = cuda_speeds(args.seconds)
    for key, label in (('graph_model_resolution', f'{shape[0]}x{shape[1]}'),
                       ('graph_640x360', '360x640')):
        for batch, r in results.get(key, {}).items():
            print(f"pixel graph {label} {batch}: eager {r['eager_frames_per_s']:.1f} frames/s, "
                  f"ONNX Runtime {r['onnxruntime_frames_per_s']:.1f} frames/s "
                  f"(ratio {r['ratio_onnxruntime_over_eager']:.2f})")
    for size in ('640x360', '640x480'):
        for backend, r in results.get(f'pipeline_{size}', {}).items():
            print(f"whole pipeline, one {size} frame, {backend}: {r['frames_per_s']:.1f} "
                  f"frames/s (median {r['ms']['median']:.1f} ms)")
    if args.cuda:
        c = results['cuda_512x1024_fp16']
        print(f"{c['device']}: ERFNet 512x1024 fp16 eager {c['eager_frames_per_s']:.0f} "
              f"frames/s, CUDA graphs {c['cuda_graphs_frames_per_s']:.0f} frames/s")
    print('written', write_report('pixel', results))


if __name__ == '__main__':
    main()

"""Inference backends: PyTorch, ONNX Runtime and TensorRT behind one interface.

Every backend takes the model's input batch (for the frame branch:
``uint8 [N, S, S, 3]`` RGB) and returns its raw output (``float32 [N]``),
and says what it is: ``name``, ``device``, ``precision``, ``describe()``.
Calibration and thresholds are applied by the pipelines, the same way
whichever backend ran.

``backend='auto'`` (see :func:`create_backend`) prefers, in order:

1. TensorRT, when the ``tensorrt`` module and a CUDA GPU are present
   (and the model has an exported ONNX graph);
2. on the CPU, ONNX Runtime when the model has an exported graph: it ran
   the frame model 1.9-2.1x faster than PyTorch eager here
   (docs/PERFORMANCE.md), and choosing it without a measurement keeps
   PyTorch out of the process (about 1.5 s of start-up and 400 MiB);
3. with ``device='cuda'``, the faster of ONNX Runtime and PyTorch,
   measured on the spot with a few batch-1 inferences;
4. otherwise PyTorch.

It logs which backend it chose and why the others were not used. Asking
for a backend that is not available is one clear error listing what is.
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

import abc
import importlib.util
import logging
import os
import time

import numpy as np

from .engine_cache import EngineCache
from .engine_cache import EngineKey
from .export import exported_graph
from .manifest import model_input_shape
from .manifest import ModelError
from .manifest import sha256_file
from ..errors import AnomalyPerceptionError

LOG = logging.getLogger(__name__)
BACKENDS = ('torch', 'onnxruntime', 'tensorrt')


class BackendError(AnomalyPerceptionError):
    """A backend is not available or cannot run the model."""


class Backend(abc.ABC):
    """Base class: ``infer(batch) -> outputs`` plus a description."""

    name = 'backend'
    device = 'cpu'
    precision = 'fp32'

    @abc.abstractmethod
    def infer(self, batch):
        """Run the model on a uint8 ``[N, H, W, 3]`` batch; return its outputs.

        One output: a float32 array. Several (the pixel graph's anomaly map
        and class ids): a tuple, floats as float32 and integers as they are.
        """

    def describe(self):
        return {'backend': self.name, 'device': self.device, 'precision': self.precision}


def _numpy_output(array):
    """One output of a multi-output graph: floats as float32, integers as they are."""
    array = np.asarray(array)
    return array.astype(np.float32) if array.dtype.kind == 'f' else array


class TorchBackend(Backend):
    """PyTorch eager (CPU or CUDA); fp16 and channels-last on CUDA; optional compile."""

    name = 'torch'

    def __init__(self, module, device='cpu', fp16=False, channels_last=False,
                 compiled=False):
        import torch
        self.torch = torch
        self.device = str(device)
        if fp16 and not self.device.startswith('cuda'):
            raise BackendError('fp16 with the torch backend needs a CUDA device.')
        if cpu_threads() and not self.device.startswith('cuda'):
            torch.set_num_threads(cpu_threads())
        module = module.to(self.device).eval()
        if fp16:
            # A model puts its heavy part in fp16 (half_precision) and keeps what must
            # stay float32 (standardisation, scores); others go fp16 whole.
            module = module.half_precision() if hasattr(module, 'half_precision') \
                else module.half()
            self.precision = 'fp16'
        if channels_last and self.device.startswith('cuda'):
            module = module.to(memory_format=torch.channels_last)
        self.module = torch.compile(module) if compiled else module
        self.compiled = bool(compiled)

    def infer(self, batch):
        torch = self.torch
        with torch.inference_mode():
            x = torch.from_numpy(np.ascontiguousarray(batch)).to(self.device)
            out = self.module(x)
            if isinstance(out, (tuple, list)):
                return tuple(_numpy_output(o.cpu().numpy()) for o in out)
            return out.float().cpu().numpy()

    def describe(self):
        return {**super().describe(), 'compiled': self.compiled,
                'torch': self.torch.__version__}


#: Inference threads on the CPU for every backend of this process (e.g. 1 in each of several
#: replays sharing a machine; evaluate bags sets it per worker). Unset: the libraries' default
#: (one per core).
THREADS_VARIABLE = 'ANOMALY_PERCEPTION_CPU_THREADS'


def cpu_threads():
    """Return ``ANOMALY_PERCEPTION_CPU_THREADS`` as an int (None if unset or not a number >= 1)."""
    try:
        value = int(os.environ.get(THREADS_VARIABLE, ''))
    except ValueError:
        return None
    return value if value >= 1 else None


class OnnxRuntimeBackend(Backend):
    """ONNX Runtime with providers in order of preference (TensorRT, CUDA, CPU).

    Its worker threads sleep between runs unless ``spin=True`` (see __init__).
    """

    name = 'onnxruntime'

    def __init__(self, onnx_path, providers=None, threads=None, precision='fp32', spin=False):
        import onnxruntime as ort
        available = ort.get_available_providers()
        preferred = ['TensorrtExecutionProvider', 'CUDAExecutionProvider',
                     'CPUExecutionProvider']
        providers = providers or [p for p in preferred if p in available]
        options = ort.SessionOptions()
        if not spin:
            # ONNX Runtime's worker threads busy-wait after each run by default: 0.9 of a
            # core at 30 frames/s for a 0.4 ms model. Without it the node uses 0.14 core,
            # a frame takes ~0.5 ms longer, and replay is as fast (docs/PERFORMANCE.md).
            options.add_session_config_entry('session.intra_op.allow_spinning', '0')
        threads = threads or cpu_threads()
        if threads:
            options.intra_op_num_threads = int(threads)
        try:
            self.session = ort.InferenceSession(str(onnx_path), options, providers=providers)
        except Exception as err:  # noqa: B902 - onnxruntime raises its own exception types
            raise BackendError(f'ONNX Runtime cannot load {str(onnx_path)!r}: {err}') from None
        self.providers = self.session.get_providers()
        self.device = 'cuda' if self.providers[0] != 'CPUExecutionProvider' else 'cpu'
        self.precision = precision
        self.input_name = self.session.get_inputs()[0].name
        self.ort_version = ort.__version__
        self.spin = bool(spin)

    def infer(self, batch):
        outs = self.session.run(None, {self.input_name: np.ascontiguousarray(batch)})
        if len(outs) == 1:
            return np.asarray(outs[0], np.float32)
        return tuple(_numpy_output(o) for o in outs)

    def describe(self):
        return {**super().describe(), 'providers': self.providers,
                'onnxruntime': self.ort_version, 'spin': self.spin}


def split_batches(n, max_batch):
    """``(start, stop)`` chunks of at most ``max_batch`` covering ``range(n)``."""
    if max_batch < 1:
        raise ValueError('max_batch must be at least 1')
    return [(s, min(s + max_batch, n)) for s in range(0, n, max_batch)]


class TensorRTBackend(Backend):
    """TensorRT 10+: an engine built from the ONNX graph, cached per GPU.

    Batches larger than the optimisation profile's maximum are split into
    chunks. Written against the TensorRT 10 Python API (tensor addresses,
    ``execute_async_v3``) with CUDA memory from torch; it has not run on a
    GPU in this project's CI (see docs/PERFORMANCE.md).
    """

    name = 'tensorrt'

    def __init__(self, onnx_path, *, precision='fp32', min_batch=1, opt_batch=8,
                 max_batch=32, cache_dir=None):
        try:
            import tensorrt as trt
        except ImportError:
            raise BackendError('TensorRT is not installed (pip install tensorrt, or '
                               'the JetPack packages).') from None
        import torch
        if not torch.cuda.is_available():
            raise BackendError('TensorRT needs a CUDA GPU; none is visible.')
        self.trt, self.torch = trt, torch
        self.device = 'cuda'
        self.precision = precision
        self.max_batch = int(max_batch)
        onnx_path = str(onnx_path)
        key = EngineKey(
            onnx_sha256=sha256_file(onnx_path), tensorrt_version=trt.__version__,
            gpu_name=torch.cuda.get_device_name(),
            compute_capability='.'.join(map(str, torch.cuda.get_device_capability())),
            precision=precision, min_batch=int(min_batch), opt_batch=int(opt_batch),
            max_batch=int(max_batch))
        self.logger = trt.Logger(trt.Logger.WARNING)
        self.runtime = trt.Runtime(self.logger)
        cache = EngineCache(cache_dir)
        self.engine, self.cache_status = cache.load_or_build(
            key, lambda: self._build(onnx_path, key), self.runtime.deserialize_cuda_engine)
        self.context = self.engine.create_execution_context()
        self.input_name = self.engine.get_tensor_name(0)
        self.output_name = self.engine.get_tensor_name(1)
        self.key = key

    def _build(self, onnx_path, key):
        trt = self.trt
        builder = trt.Builder(self.logger)
        network = builder.create_network(0)
        parser = trt.OnnxParser(network, self.logger)
        with open(onnx_path, 'rb') as handle:
            if not parser.parse(handle.read()):
                errors = '; '.join(str(parser.get_error(i)) for i in range(parser.num_errors))
                raise BackendError(f'TensorRT cannot parse {onnx_path!r}: {errors}')
        config = builder.create_builder_config()
        config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, 1 << 30)
        if key.precision == 'fp16':
            config.set_flag(trt.BuilderFlag.FP16)
        tensor = network.get_input(0)
        shape = tuple(tensor.shape[1:])
        profile = builder.create_optimization_profile()
        profile.set_shape(tensor.name, (key.min_batch, *shape), (key.opt_batch, *shape),
                          (key.max_batch, *shape))
        config.add_optimization_profile(profile)
        data = builder.build_serialized_network(network, config)
        if data is None:
            raise BackendError(f'TensorRT failed to build an engine from {onnx_path!r}.')
        return data

    def infer(self, batch):
        torch = self.torch
        outputs = []
        for start, stop in split_batches(len(batch), self.max_batch):
            x = torch.from_numpy(np.ascontiguousarray(batch[start:stop])).cuda()
            y = torch.empty(stop - start, dtype=torch.float32, device='cuda')
            self.context.set_input_shape(self.input_name, tuple(x.shape))
            self.context.set_tensor_address(self.input_name, x.data_ptr())
            self.context.set_tensor_address(self.output_name, y.data_ptr())
            stream = torch.cuda.current_stream()
            if not self.context.execute_async_v3(stream.cuda_stream):
                raise BackendError('TensorRT execution failed.')
            stream.synchronize()
            outputs.append(y.cpu().numpy())
        return np.concatenate(outputs)

    def describe(self):
        return {**super().describe(), 'tensorrt': self.trt.__version__,
                'engine_cache': self.cache_status, 'max_batch': self.max_batch,
                'gpu': self.key.gpu_name}


def backend_availability():
    """``{name: (available, reason)}`` for this machine (before looking at a model)."""
    out = {'torch': (True, 'PyTorch is installed')}
    if importlib.util.find_spec('onnxruntime') is None:
        out['onnxruntime'] = (False, 'onnxruntime is not installed')
    else:
        out['onnxruntime'] = (True, 'onnxruntime is installed')
    if importlib.util.find_spec('tensorrt') is None:
        out['tensorrt'] = (False, 'the tensorrt module is not installed')
    else:
        import torch
        out['tensorrt'] = (torch.cuda.is_available(),
                           'TensorRT and a CUDA GPU are present' if torch.cuda.is_available()
                           else 'no CUDA GPU is visible')
    return out


def _graph(model_dir, manifest, precision, backend):
    try:
        return exported_graph(model_dir, manifest, precision)
    except ModelError as err:
        raise BackendError(f'The {backend} backend runs the exported graph: {err}') from None


def create_backend(name, model_dir, manifest, load_module, *, device='cpu', precision='fp32',
                   threads=None, max_batch=32, cache_dir=None, compiled=False, spin=False):
    """Create the backend called ``name`` (or choose one with ``'auto'``).

    Args:
        name: ``'torch'``, ``'onnxruntime'``, ``'tensorrt'`` or ``'auto'``.
        model_dir, manifest: the (verified) model directory.
        load_module: ``() -> torch module`` for the torch backend.
        device: ``'cpu'`` or ``'cuda'`` (torch backend).
        precision: ``'fp32'`` or ``'fp16'``.
        spin: let ONNX Runtime's threads busy-wait between runs (lower latency
            per call in a tight loop, a core's worth of CPU while idle).

    Raises:
        BackendError: unknown or unavailable backend (the message lists the
            available ones), or a model without the exported graph it needs.

    """
    if name == 'auto':
        return _auto(model_dir, manifest, load_module, device, precision, threads, max_batch,
                     cache_dir)
    if name not in BACKENDS:
        raise BackendError(f'Unknown backend {name!r}; choose from {", ".join(BACKENDS)} '
                           'or auto.')
    available = backend_availability()
    ok, reason = available[name]
    if not ok:
        usable = ', '.join(n for n, (a, _) in available.items() if a)
        raise BackendError(f'Backend {name!r} is not available: {reason}. Available here: '
                           f'{usable}.')
    if name == 'torch':
        return TorchBackend(load_module(), device, fp16=precision == 'fp16', compiled=compiled)
    if name == 'onnxruntime':
        return OnnxRuntimeBackend(_graph(model_dir, manifest, precision, name), threads=threads,
                                  precision=precision, spin=spin)
    return TensorRTBackend(_graph(model_dir, manifest, 'fp32', name), precision=precision,
                           max_batch=max_batch, cache_dir=cache_dir)


def _latency(backend, sample, runs=30):
    for _ in range(3):
        backend.infer(sample)
    start = time.perf_counter()
    for _ in range(runs):
        backend.infer(sample)
    return (time.perf_counter() - start) / runs


def _auto(model_dir, manifest, load_module, device, precision, threads, max_batch, cache_dir):
    available = backend_availability()
    skipped = {}
    if available['tensorrt'][0]:
        try:
            backend = create_backend('tensorrt', model_dir, manifest, load_module,
                                     precision=precision, max_batch=max_batch,
                                     cache_dir=cache_dir)
            LOG.info('backend auto: chose tensorrt (TensorRT and a GPU are present).')
            return backend
        except BackendError as err:
            skipped['tensorrt'] = str(err)
    else:
        skipped['tensorrt'] = available['tensorrt'][1]
    if not str(device).startswith('cuda'):
        if available['onnxruntime'][0]:
            try:
                chosen = create_backend('onnxruntime', model_dir, manifest, load_module,
                                        precision=precision, threads=threads)
            except BackendError as err:
                skipped['onnxruntime'] = str(err)
            else:
                reason = ('on the CPU, ONNX Runtime runs the exported graph faster than '
                          'PyTorch eager (docs/PERFORMANCE.md)')
                LOG.info('backend auto: chose onnxruntime (%s); not used: %s', reason,
                         '; '.join(f'{n}: {r}' for n, r in skipped.items()))
                chosen.auto_choice = {'reason': reason, 'measured_ms': {},
                                      'skipped': skipped}
                return chosen
        else:
            skipped['onnxruntime'] = available['onnxruntime'][1]
        reasons = '; '.join(f'{n}: {r}' for n, r in skipped.items())
        LOG.info('backend auto: chose torch (the only backend left; not used: %s)', reasons)
        chosen = TorchBackend(load_module(), device)
        chosen.auto_choice = {'reason': 'the only backend left', 'measured_ms': {},
                              'skipped': skipped}
        return chosen
    candidates = {'torch': TorchBackend(load_module(), device)}
    if available['onnxruntime'][0]:
        try:
            candidates['onnxruntime'] = create_backend('onnxruntime', model_dir, manifest,
                                                       load_module, precision=precision,
                                                       threads=threads)
        except BackendError as err:
            skipped['onnxruntime'] = str(err)
    else:
        skipped['onnxruntime'] = available['onnxruntime'][1]
    sample = np.zeros((1, *model_input_shape(manifest['preprocessing']), 3), np.uint8)
    timings = {n: _latency(b, sample) for n, b in candidates.items()}
    best = min(timings, key=timings.get)
    measured = ', '.join(f'{n} {t * 1e3:.3f} ms' for n, t in timings.items())
    reasons = '; '.join(f'{n}: {r}' for n, r in skipped.items())
    LOG.info('backend auto: chose %s (measured per batch-1 inference: %s)%s', best, measured,
             f'; not used: {reasons}' if reasons else '')
    chosen = candidates[best]
    chosen.auto_choice = {'reason': f'measured fastest on {device}',
                          'measured_ms': {n: t * 1e3 for n, t in timings.items()},
                          'skipped': skipped}
    return chosen

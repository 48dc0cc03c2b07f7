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

"""``anomaly-perception export``: model directory -> ONNX graph, recorded in the manifest.

Each branch registers an *export spec*: how to build its torch module from
a model directory, the example input, and the input/output names and
dynamic axes. The frame branch's graph takes ``uint8 [N, H, W, 3]`` RGB at
the model's input shape (batch dynamic) and returns the raw score ``[N]``:
standardisation happens inside the graph, so no caller can forget it. The
manifest's ``preprocessing`` (input shape, crop, resize) is stored in the
graph's metadata (``anomaly_perception.preprocessing``, JSON), so a graph
copied away from its model directory still says how to feed it.

The manifest gets an ``exports`` entry per precision with the file, its
sha256 (also in ``files``), opset, and the input/output names, shapes and
types; ``onnx.checker`` must pass before anything is written.
"""

import dataclasses
import io
import json
import warnings

from .manifest import add_files
from .manifest import load_manifest
from .manifest import ModelError

DEFAULT_OPSET = 17


@dataclasses.dataclass(frozen=True)
class ExportSpec:
    """How one branch's model is exported."""

    build: object               # model_dir -> (torch module in eval mode, manifest)
    example: object             # manifest -> example input (torch tensor)
    to_fp16: object             # module -> module with its heavy part in fp16
    input_name: str
    output_name: str
    input_dtype: str
    output_dtype: str


EXPORT_SPECS = {}


def register_export(branch, spec):
    """Register the :class:`ExportSpec` of a branch (``'frame'``, later ``'pixel'``...)."""
    EXPORT_SPECS[branch] = spec


def _frame_spec():
    import torch

    def build(model_dir):
        from ..perception.frame import load_frame_model
        return load_frame_model(model_dir)

    def example(manifest):
        from .manifest import model_input_shape
        height, width = model_input_shape(manifest['preprocessing'])
        return torch.zeros(2, height, width, 3, dtype=torch.uint8)

    def to_fp16(module):
        import copy
        module = copy.deepcopy(module)
        module.encoder.half()
        return module

    return ExportSpec(build, example, to_fp16, 'images', 'score', 'uint8', 'float32')


def onnx_file_name(precision):
    return 'model.onnx' if precision == 'fp32' else f'model_{precision}.onnx'


def _to_onnx_bytes(module, example, spec, opset):
    import torch
    buf = io.BytesIO()
    kwargs = {'input_names': [spec.input_name], 'output_names': [spec.output_name],
              'dynamic_axes': {spec.input_name: {0: 'batch'}, spec.output_name: {0: 'batch'}},
              'opset_version': opset}
    with warnings.catch_warnings():
        # The TorchScript-based exporter is deprecated in favour of the
        # torch.export one, which needs onnxscript; it is kept because it
        # handles these small graphs without extra dependencies.
        warnings.simplefilter('ignore')
        try:
            torch.onnx.export(module, (example,), buf, dynamo=False, **kwargs)
        except TypeError:  # a torch without the dynamo switch
            torch.onnx.export(module, (example,), buf, **kwargs)
    return buf.getvalue()


def export_model(model_dir, opset=DEFAULT_OPSET, fp16=False):
    """Export a model directory's network to ONNX and record it; return the export entry.

    Raises:
        ModelError: unknown branch, or a graph that fails ``onnx.checker``.

    """
    import onnx
    manifest = load_manifest(model_dir)
    branch = manifest.get('branch')
    if not EXPORT_SPECS and branch == 'frame':
        register_export('frame', _frame_spec())
    spec = EXPORT_SPECS.get(branch)
    if spec is None:
        raise ModelError(f'{str(model_dir)!r}: no ONNX export for {branch!r} models.')
    module, manifest = spec.build(model_dir)
    example = spec.example(manifest)
    precision = 'fp16' if fp16 else 'fp32'
    if fp16:
        # Weights and convolutions in fp16; input, standardisation and score
        # stay uint8/float32 (see FrameDensityModel.embed).
        module = spec.to_fp16(module)
    data = _to_onnx_bytes(module, example, spec, opset)
    graph = onnx.load_from_string(data)
    # The preprocessing that produced the graph's input travels with the graph.
    for key, value in (('anomaly_perception.preprocessing',
                        json.dumps(manifest.get('preprocessing', {}), sort_keys=True)),
                       ('anomaly_perception.branch', str(branch))):
        prop = graph.metadata_props.add()
        prop.key, prop.value = key, value
    data = graph.SerializeToString()
    try:
        onnx.checker.check_model(onnx.load_from_string(data), full_check=True)
    except Exception as err:  # noqa: B902 - onnx raises several checker error types
        raise ModelError(f'The exported graph of {str(model_dir)!r} fails onnx.checker: '
                         f'{err}') from None
    name = onnx_file_name(precision)
    size = list(example.shape[1:])
    entry = {'file': name, 'opset': opset, 'precision': precision,
             'inputs': [{'name': spec.input_name, 'shape': ['batch', *size],
                         'dtype': spec.input_dtype}],
             'outputs': [{'name': spec.output_name, 'shape': ['batch'],
                          'dtype': spec.output_dtype}]}
    exports = dict(manifest.get('exports') or {})
    exports[f'onnx_{precision}'] = entry
    updated = add_files(model_dir, {name: data}, {'exports': exports})
    entry['sha256'] = updated['files'][name]['sha256']
    return entry


def exported_graph(model_dir, manifest, precision='fp32'):
    """Path of a model's exported ONNX graph (its hash was checked with the manifest).

    Raises:
        ModelError: nothing exported at that precision; the message gives the
            export command.

    """
    from pathlib import Path
    entry = (manifest.get('exports') or {}).get(f'onnx_{precision}')
    if entry is None:
        flag = ' --fp16' if precision == 'fp16' else ''
        raise ModelError(f'{str(model_dir)!r} has no exported {precision} ONNX graph; run '
                         f'`anomaly-perception export --model {model_dir}{flag}` first.')
    return Path(model_dir) / entry['file']

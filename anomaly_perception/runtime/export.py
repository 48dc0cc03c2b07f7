"""``anomaly-perception export``: model directory -> ONNX graph, recorded in the manifest.

Any registered architecture (:mod:`anomaly_perception.models.registry`)
exports the same way: the registry says how to build the module, its
input (``uint8 [N, H, W, 3]`` RGB at the model's input shape, batch
dynamic) and its outputs (the frame branch's: the raw score ``[N]``), so
this module knows no branch. Standardisation happens inside the graph, so
no caller can forget it. The
manifest's ``preprocessing`` (input shape, crop, resize) is stored in the
graph's metadata (``anomaly_perception.preprocessing``, JSON), so a graph
copied away from its model directory still says how to feed it.

The manifest gets an ``exports`` entry per precision with the file, its
sha256 (also in ``files``), opset, and the input/output names, shapes and
types; ``onnx.checker`` must pass before anything is written.
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

import copy
import io
import json
from pathlib import Path
import warnings

import numpy as np

from .manifest import add_files
from .manifest import load_manifest
from .manifest import model_input_shape
from .manifest import ModelError
from .network import architecture_of
from .network import load_network

DEFAULT_OPSET = 17


def onnx_file_name(precision):
    return 'model.onnx' if precision == 'fp32' else f'model_{precision}.onnx'


def _dims(dims, height, width):
    return [height if d == 'H' else width if d == 'W' else d for d in dims]


def to_onnx_bytes(module, example, arch, opset=DEFAULT_OPSET):
    """Return the ONNX graph of ``module`` traced on ``example`` (batch axis dynamic).

    Input and output names come from ``arch`` (the registered architecture); no
    checks and no metadata: :func:`export_model` adds those for model
    directories, and benchmarks use this to export a network they built.
    """
    import torch
    buf = io.BytesIO()
    names = [t.name for t in arch.inputs], [t.name for t in arch.outputs]
    kwargs = {'input_names': names[0], 'output_names': names[1],
              'dynamic_axes': {name: {0: 'batch'} for name in (*names[0], *names[1])},
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
        ModelError: unknown architecture, or a graph that fails ``onnx.checker``.

    """
    import onnx
    import torch
    module, manifest = load_network(model_dir)
    arch = architecture_of(model_dir, manifest)
    if not arch.exportable:
        raise ModelError(f'{str(model_dir)!r}: a {arch.name!r} model runs offline in PyTorch; '
                         'it has no ONNX graph to export.')
    height, width = model_input_shape(manifest['preprocessing'])
    image = arch.inputs[0]
    example = torch.zeros(2, *_dims(image.dims, height, width), dtype=getattr(torch, image.dtype))
    precision = 'fp16' if fp16 else 'fp32'
    if fp16:
        module = arch.to_fp16(module) if arch.to_fp16 else copy.deepcopy(module).half()
    data = to_onnx_bytes(module, example, arch, opset)
    graph = onnx.load_from_string(data)
    # The preprocessing that produced the graph's input travels with the graph.
    for key, value in (('anomaly_perception.preprocessing',
                        json.dumps(manifest.get('preprocessing', {}), sort_keys=True)),
                       ('anomaly_perception.branch', str(manifest.get('branch')))):
        prop = graph.metadata_props.add()
        prop.key, prop.value = key, value
    data = graph.SerializeToString()
    try:
        onnx.checker.check_model(onnx.load_from_string(data), full_check=True)
    except Exception as err:  # noqa: B902 - onnx raises several checker error types
        raise ModelError(f'The exported graph of {str(model_dir)!r} fails onnx.checker: '
                         f'{err}') from None
    name = onnx_file_name(precision)

    def describe(tensor):
        return {'name': tensor.name, 'shape': ['batch', *_dims(tensor.dims, height, width)],
                'dtype': tensor.dtype}

    entry = {'file': name, 'opset': opset, 'precision': precision,
             'inputs': [describe(t) for t in arch.inputs],
             'outputs': [describe(t) for t in arch.outputs]}
    exports = dict(manifest.get('exports') or {})
    exports[f'onnx_{precision}'] = entry
    updated = add_files(model_dir, {name: data}, {'exports': exports})
    entry['sha256'] = updated['files'][name]['sha256']
    return entry


def _fp16_initializers(data, min_size=256):
    """Return the ONNX graph with its float32 weights stored as float16, cast back when loaded.

    Each float32 initializer of ``min_size`` values or more becomes a float16
    initializer and a ``Cast`` to float32 at the head of the graph: the file
    halves, the arithmetic stays float32 (ONNX Runtime folds the casts when
    it loads the graph).
    """
    import onnx
    from onnx import helper
    from onnx import numpy_helper
    graph_model = onnx.load_from_string(data)
    graph = graph_model.graph
    kept, casts = [], []
    for init in graph.initializer:
        if init.data_type == onnx.TensorProto.FLOAT and int(np.prod(init.dims)) >= min_size:
            half = numpy_helper.from_array(numpy_helper.to_array(init).astype(np.float16),
                                           f'{init.name}__fp16')
            kept.append(half)
            casts.append(helper.make_node('Cast', [half.name], [init.name],
                                          to=onnx.TensorProto.FLOAT,
                                          name=f'{init.name}__to_fp32'))
        else:
            kept.append(init)
    del graph.initializer[:]
    graph.initializer.extend(kept)
    nodes = casts + list(graph.node)
    del graph.node[:]
    graph.node.extend(nodes)
    return graph_model.SerializeToString()


def store_fp16_weights(model_dir):
    """Store a model directory's weights at half precision; it still computes in float32.

    The weights file's floating tensors are saved as float16 (loading casts
    them back into the float32 network) and every float32 ONNX graph keeps
    its weights as float16 with casts (:func:`_fp16_initializers`): the
    directory shrinks by about half, and the torch and ONNX paths compute on
    the same rounded weights, so they agree as closely as before. Returns
    the manifest.
    """
    import onnx
    import torch
    manifest = load_manifest(model_dir)
    arch = architecture_of(model_dir, manifest)
    saved = torch.load(Path(model_dir) / arch.weights_file, map_location='cpu',
                       weights_only=True)
    saved['state_dict'] = {k: v.half() if v.is_floating_point() else v
                           for k, v in saved['state_dict'].items()}
    buf = io.BytesIO()
    torch.save(saved, buf)
    files = {arch.weights_file: buf.getvalue()}
    exports = dict(manifest.get('exports') or {})
    for key, entry in exports.items():
        if entry.get('precision') == 'fp32' and not entry.get('weights') == 'fp16':
            data = _fp16_initializers((Path(model_dir) / entry['file']).read_bytes())
            onnx.checker.check_model(onnx.load_from_string(data), full_check=True)
            files[entry['file']] = data
            exports[key] = {**entry, 'weights': 'fp16'}
    return add_files(model_dir, files, {'exports': exports, 'weights_storage': 'fp16'})


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

"""A model directory's network as a torch module, for any registered architecture.

The manifest names the architecture (``architecture.type``); the registry in
:mod:`anomaly_perception.models.registry` builds it and says which file
holds its weights. This is the one place weights are loaded, for the
PyTorch backend, export and training tools alike, so the runtime needs no
branch code.
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

from .manifest import load_manifest
from .manifest import ModelError


def architecture_of(model_dir, manifest):
    """Return the registered architecture a manifest names.

    Raises:
        ModelError: the manifest names none, or one this package does not know.

    """
    from ..models import registry
    name = (manifest.get('architecture') or {}).get('type')
    arch = registry.get(name) if name else None
    if arch is None:
        raise ModelError(f'{str(model_dir)!r}: unknown architecture {name!r} (known: '
                         f'{", ".join(registry.names())}).')
    return arch


def load_network(model_dir, manifest=None, *, branch=None):
    """Verify a model directory (unless ``manifest`` is given) and build its network.

    Returns:
        ``(torch module in eval mode on the CPU, manifest dict)``.

    Raises:
        ModelError: missing/corrupt files (named), another branch's model, an
            unknown architecture, or weights that do not fit it.

    """
    if manifest is None:
        manifest = load_manifest(model_dir, branch=branch)
    elif branch is not None and manifest.get('branch') != branch:
        raise ModelError(f'{str(model_dir)!r} holds a {manifest.get("branch")!r} model, '
                         f'expected a {branch!r} model.')
    arch = architecture_of(model_dir, manifest)
    if arch.weights_file not in manifest.get('files', {}):
        raise ModelError(f'{str(model_dir)!r}: the manifest lists no {arch.weights_file}.')
    # PyTorch loads only here: the ONNX Runtime and TensorRT paths never import it, which
    # saves a robot about 1.5 s of start-up and 400 MiB of memory.
    import torch
    path = Path(model_dir) / arch.weights_file
    try:
        saved = torch.load(path, map_location='cpu', weights_only=True)
        module = arch.build(manifest['architecture'])
        module.load_state_dict(saved['state_dict'])
    except (KeyError, RuntimeError, ValueError, TypeError, OSError) as err:
        raise ModelError(f'{str(path)!r} does not hold the weights its manifest describes: '
                         f'{err}') from None
    module.eval()
    return module, manifest

"""Network architectures by name: a manifest's ``architecture`` -> a torch module.

Every architecture a model directory can name (``architecture.type`` in its
manifest) is registered here with what the runtime needs to run and export
it without knowing the branch: how to build the module (randomly
initialised; the runtime loads the weights), the weights file, the graph's
input and outputs, and how to put its heavy part in fp16.

The architectures live in the branches that use them; a branch's package
registers each with :func:`register_lazy` when it is imported, giving a
function that imports the module defining it. So listing names needs no
torch (the ONNX Runtime path of a robot never loads it), and this module
never imports a branch.
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


@dataclasses.dataclass(frozen=True)
class Tensor:
    """A graph input or output: name, dtype, and its dimensions after the batch.

    Dimensions are ints, or names resolved when the graph is exported:
    ``'H'`` and ``'W'`` are the model's input height and width.
    """

    name: str
    dtype: str
    dims: tuple = ()


@dataclasses.dataclass(frozen=True)
class Architecture:
    """How the runtime builds, loads and exports one architecture."""

    name: str
    build: object               # manifest['architecture'] dict -> torch module (random init)
    weights_file: str           # the state dict's file in the model directory
    inputs: tuple               # Tensor s; the first is uint8 [N, H, W, 3] images
    outputs: tuple              # Tensor s
    to_fp16: object = None      # module -> copy with its heavy part in fp16 (None: all of it)
    exportable: bool = True     # False: runs offline in PyTorch only (no ONNX graph, no backend)


_REGISTERED = {}
_LAZY = {}     # architecture name -> function returning its Architecture (imports its module)


def register(architecture):
    """Register an :class:`Architecture` (replacing one of the same name)."""
    _REGISTERED[architecture.name] = architecture


def register_lazy(name, load):
    """Register ``name``, built by ``load()`` -> :class:`Architecture` on first use."""
    _LAZY[name] = load


def names():
    """Return every architecture name that can be built."""
    return sorted({*_LAZY, *_REGISTERED})


def get(name):
    """Return the :class:`Architecture` called ``name``, or None if there is none."""
    if name not in _REGISTERED and name in _LAZY:
        register(_LAZY[name]())
    return _REGISTERED.get(name)

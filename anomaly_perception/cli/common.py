"""Pieces every command group shares: the parser class, argument types, option groups."""

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


PROG = 'anomaly-perception'


class Parser(argparse.ArgumentParser):
    """ArgumentParser whose errors are one line (usage stays behind --help)."""

    def error(self, message):
        self.exit(2, f'{self.prog}: error: {message} (see {self.prog} --help)\n')


def positive_int(text):
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f'expected an integer, got {text!r}') from None
    if value < 1:
        raise argparse.ArgumentTypeError(f'expected a positive integer, got {value}')
    return value


def resolution(text):
    try:
        w, h = (int(v) for v in text.lower().split('x'))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f'expected WIDTHxHEIGHT such as 640x360, got {text!r}') from None
    return w, h


def _shape(text, multiple):
    try:
        height, width = (int(v) for v in text.lower().split('x'))
    except ValueError:
        raise argparse.ArgumentTypeError(f'expected HEIGHTxWIDTH, got {text!r}') from None
    if height <= 0 or width <= 0 or height % multiple or width % multiple:
        raise argparse.ArgumentTypeError(
            f'sides must be positive multiples of {multiple}, got {text!r}')
    return [height, width]


def shape(text):
    """Parse ``HxW`` with sides multiples of 16 (frame models)."""
    return _shape(text, 16)


def aspect(text):
    """Parse an aspect ratio ``W:H`` (or a number) into width / height."""
    try:
        if ':' in text:
            w, h = (float(v) for v in text.split(':'))
        else:
            w, h = float(text), 1.0
        if w <= 0 or h <= 0:
            raise ValueError
    except ValueError:
        raise argparse.ArgumentTypeError(f'expected W:H such as 16:9, got {text!r}') from None
    return w / h


def shape8(text):
    """Parse ``HxW`` with sides multiples of 8 (ERFNet)."""
    return _shape(text, 8)


def exposed_count(text):
    if text == 'all':
        return 'all'
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a count or 'all', got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f'expected a count >= 0, got {value}')
    return value


def add_ae_options(p, bag_defaults=False):
    g = p.add_argument_group('autoencoder')
    more = ' (--bag: 8)' if bag_defaults else ''
    g.add_argument('--width', type=positive_int, default=None if bag_defaults else 16,
                   help=f'channels of the first convolution (default 16{more}; see '
                        'docs/RESULTS.md)')
    g.add_argument('--ae-epochs', type=positive_int, default=None if bag_defaults else 30,
                   help='default 30' + (' (--bag: 25)' if bag_defaults else ''))
    g.add_argument('--ae-batch-size', type=positive_int, default=64)
    g.add_argument('--no-augment', action='store_true', help='train without augmentation')


def add_density_options(p, bag_defaults=False):
    g = p.add_argument_group('density')
    g.add_argument('--density-epochs', type=positive_int, default=None if bag_defaults else 200,
                   help='default 200' + (' (--bag: 100)' if bag_defaults else ''))
    g.add_argument('--lambda', dest='lam', type=float, default=1.0, help='OE weight (1)')
    g.add_argument('--gamma', type=float, default=100.0, help='OE margin in nats (100)')


def ae_config(args, width=16, epochs=30, **extra):
    from ..branches.frame.train import AutoencoderConfig
    return AutoencoderConfig(width=args.width or width, epochs=args.ae_epochs or epochs,
                             batch_size=args.ae_batch_size, augment=not args.no_augment,
                             seed=args.seed, **extra)


def density_config(args, oe=True, epochs=200):
    from ..branches.frame.train import DensityConfig
    return DensityConfig(epochs=args.density_epochs or epochs, lam=args.lam, gamma=args.gamma,
                         oe=oe, seed=args.seed)


def add_branch_option(p):
    """Add ``--branch`` (default: the --model's own branch, else the frame branch)."""
    from ..branches.registry import branch_names
    p.add_argument('--branch', choices=branch_names(),
                   help="which branch's pipeline (default: the --model's, else frame)")


def resolve_branch(branch, model):
    """Return ``(Branch, model directory)`` for ``--branch`` and ``--model`` (either may be None).

    Without ``--branch``, the model's manifest says which branch it is;
    without ``--model``, the branch's shipped model runs.
    """
    from ..branches.registry import get_branch
    from ..runtime.manifest import load_manifest
    if branch is None and model is not None:
        branch = load_manifest(model, verify=False).get('branch')
    spec = get_branch(branch or 'frame')
    return spec, model or spec.shipped_model_dir()

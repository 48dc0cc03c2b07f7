"""The ``anomaly-perception`` command line.

One module per command group (``bags``: inspect, replay, tag; ``world``:
the synthetic world's ``synth`` commands; ``train``; ``score``; ``evaluate``;
``experiment``; ``synthesize``: the synthesis branch; ``runtime``: export,
bench; ``demo``), each a thin layer over the library: ``add_<command>``
declares a command's arguments, its ``_run_*`` functions call the
package's code. Errors the user can fix (bad file, bad argument) end the
program with one line on stderr and a non-zero exit code: 2 for usage
errors, 1 for everything else.
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

import sys

from .bags import add_inspect
from .bags import add_replay
from .bags import add_tag
from .common import Parser
from .common import PROG
from .demo import add_demo
from .evaluate import add_evaluate
from .experiment import add_experiment
from .runtime import add_bench
from .runtime import add_export
from .runtime import add_import_sam
from .score import add_score
from .synthesize import add_synthesize
from .train import add_train
from .world import add_synth
from .. import __version__
from ..errors import AnomalyPerceptionError
from ..errors import UsageError

__all__ = ['build_parser', 'main', 'PROG', 'UsageError']

COMMANDS = [add_inspect, add_synth, add_train, add_score, add_evaluate, add_experiment,
            add_synthesize, add_replay, add_tag, add_export, add_import_sam, add_bench,
            add_demo]


def build_parser():
    parser = Parser(
        prog=PROG,
        description='Anomaly perception for mobile robots: data, training, evaluation '
                    'and replay without ROS 2; the ROS 2 nodes are started with ros2 run/launch.')
    parser.add_argument('--version', action='version', version=f'{PROG} {__version__}')
    sub = parser.add_subparsers(dest='command', metavar='COMMAND', required=True,
                                parser_class=Parser)
    for add in COMMANDS:
        add(sub)
    return parser


def main(argv=None):
    """Run the CLI; returns the exit code (also used as the console script)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.run(args) or 0)
    except AnomalyPerceptionError as err:
        one_line = ' '.join(line.strip() for line in str(err).splitlines())
        print(f'{PROG}: error: {one_line}', file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f'{PROG}: interrupted', file=sys.stderr)
        return 130


if __name__ == '__main__':
    sys.exit(main())

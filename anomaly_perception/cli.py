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

"""The ``anomaly-perception`` command line.

Each command lives in its own function pair: ``_add_<name>(subparsers)``
declares its arguments, ``_run_<name>(args)`` does the work by calling the
package's library code. Errors the user can fix (bad file, bad argument)
end the program with one line on stderr and a non-zero exit code: 2 for
usage errors, 1 for everything else.
"""

import argparse
import json
import sys

from . import __version__
from .errors import AnomalyPerceptionError

PROG = 'anomaly-perception'


class _Parser(argparse.ArgumentParser):
    """ArgumentParser whose errors are one line (usage stays behind --help)."""

    def error(self, message):
        self.exit(2, f'{self.prog}: error: {message} (see {self.prog} --help)\n')


# --- inspect --------------------------------------------------------------------------------


def _add_inspect(sub):
    p = sub.add_parser(
        'inspect', help='list the topics of a ROS 2 bag',
        description='List the topics of a ROS 2 bag (sqlite3 or mcap) with their types, '
                    'message counts and rates, and describe its image topics.')
    p.add_argument('bag', help='bag directory, or a single .mcap / .db3 file')
    p.add_argument('--json', action='store_true', help='print JSON instead of a table')
    p.set_defaults(run=_run_inspect)


def _run_inspect(args):
    from .io.bags import BagReader
    from .io.bags import IMAGE_TYPES

    with BagReader(args.bag) as bag:
        seconds = bag.duration_ns / 1e9 if bag.message_count else 0.0
        topics = []
        for t in bag.topics.values():
            topics.append({
                'name': t.name, 'type': t.msgtype, 'count': t.count,
                # Mean rate over the whole bag; exact for a topic that spans it.
                'rate_hz': round((t.count - 1) / seconds, 2) if seconds > 0 and t.count > 1
                else None,
            })
        images = {}
        for name in bag.image_topics:
            for topic, _, msg in bag.messages([name]):
                fields = {'frame_id': msg.header.frame_id}
                if bag.topics[topic].msgtype == IMAGE_TYPES[0]:
                    fields.update(width=int(msg.width), height=int(msg.height),
                                  encoding=msg.encoding)
                else:
                    fields.update(format=msg.format)
                images[name] = fields
                break
        info = {
            'path': str(bag.path), 'storage': bag.storage, 'distro': bag.distro,
            'messages': bag.message_count, 'duration_s': round(seconds, 3),
            'start_ns': bag.start_ns if bag.message_count else None,
            'topics': topics, 'image_topics': images,
        }
    if args.json:
        print(json.dumps(info, indent=2))
        return 0
    print(f"{info['path']}  ({info['storage']}, {info['messages']} messages, "
          f"{info['duration_s']:.3f} s)")
    width = max([len(t['name']) for t in topics] + [5])
    for t in topics:
        rate = f"{t['rate_hz']:8.2f} Hz" if t['rate_hz'] is not None else '       - Hz'
        print(f"  {t['name']:<{width}}  {t['count']:>7}  {rate}  {t['type']}")
    for name, fields in images.items():
        desc = ', '.join(f'{k}={v}' for k, v in fields.items())
        print(f'  image topic {name}: {desc}')
    return 0


# --- entry point ----------------------------------------------------------------------------

COMMANDS = [_add_inspect]


def build_parser():
    parser = _Parser(
        prog=PROG,
        description='Anomaly perception for mobile robots: data, training, evaluation '
                    'and replay without ROS 2; the ROS 2 nodes are started with ros2 run/launch.')
    parser.add_argument('--version', action='version', version=f'{PROG} {__version__}')
    sub = parser.add_subparsers(dest='command', metavar='COMMAND', required=True,
                                parser_class=_Parser)
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

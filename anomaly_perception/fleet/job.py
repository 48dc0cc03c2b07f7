"""One replay's settings, resolved the same way for ``replay`` and for every bag of a fleet.

:class:`ReplayJob` holds what the ``replay`` command is told (pipelines,
``[BRANCH=]DIR`` models, ``[BRANCH=]FILE`` parameter files, a place, the
backend...) as plain, picklable values, so that a fleet can send it to
workers on other machines; :meth:`ReplayJob.run` resolves it there and calls
:func:`~...replay.engine.replay`, the one pipeline the nodes run.
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

from ..errors import UsageError


def per_branch(values, names, option):
    """``{branch: value}`` of ``[BRANCH=]VALUE`` options (a bare value: the only pipeline)."""
    out = {}
    for item in values:
        name, sep, value = item.partition('=')
        if not (sep and name in names):
            if len(names) != 1:
                raise UsageError(f'{option} {item!r}: with --pipelines {",".join(names)} give '
                                 'BRANCH=VALUE for one of them.')
            name, value = names[0], item
        if name in out:
            raise UsageError(f'{option}: {name} given twice.')
        out[name] = value
    return out


@dataclasses.dataclass(frozen=True)
class ReplayJob:
    """What ``replay`` is told, for any bag (see ``anomaly-perception replay --help``)."""

    pipelines: str = 'frame'
    models: tuple = ()           # '[BRANCH=]DIR' items
    params: tuple = ()           # '[BRANCH=]FILE' items
    place: str = None
    backend: str = 'auto'
    topic: str = None
    labels: str = None
    namespace: str = None
    batch: int = 32

    def resolve(self):
        """Return the replay's keyword arguments: branches, models, configs, monitor.

        Raises:
            UsageError: a pipeline named twice or unknown, a model or parameter
                file given twice, or a model the place already gives.
            PlaceError / ConfigError: an unusable place or parameter file.

        """
        from ..branches.registry import get_branch
        from ..branches.registry import get_branches
        from ..config import load_config
        pipelines, monitor, place = self.pipelines, None, None
        if self.place:
            from ..branches.place.directory import load_place
            place = load_place(self.place)
            asked = [n.strip() for n in pipelines.split(',') if n.strip()]
            others = [n for n in asked if n not in ('frame', 'pixel')]
            pipelines = ','.join(['frame', 'pixel'] + others)
            monitor = place.monitor_spec()
        branches = get_branches(pipelines)
        names = [b.name for b in branches]
        if not names or len(set(names)) != len(names):
            raise UsageError(f'--pipelines {self.pipelines!r}: name each branch once.')
        model_dirs = per_branch(self.models, names, '--model')
        if place is not None:
            given = {k: str(v) for k, v in place.model_dirs().items() if k in names}
            clash = sorted(set(model_dirs) & set(given))
            if clash:
                raise UsageError(f'--model {",".join(clash)}: --place gives the '
                                 f'{" and ".join(sorted(given))} models.')
            model_dirs.update(given)
        configs = {n: load_config(get_branch(n).config, path)
                   for n, path in per_branch(self.params, names, '--params').items()}
        return {'pipelines': branches, 'model_dirs': model_dirs, 'configs': configs,
                'monitor': monitor}

    def run(self, bag, out, *, overwrite=False, show_progress=True):
        """Replay ``bag`` into ``out``; return the report (see :func:`replay`)."""
        from ..replay.engine import replay
        return replay(bag, out, topic=self.topic, backend=self.backend, labels=self.labels,
                      namespace=self.namespace, batch=self.batch, overwrite=overwrite,
                      show_progress=show_progress, **self.resolve())

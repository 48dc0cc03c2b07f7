"""One hazard flag from several branches: the fused evidence and its level.

Each branch (frame, pixel) gives a calibrated probability per frame: the
share of its own held-out normal frames that scored lower. The fused
evidence of a frame is the largest of its branches' probabilities (rule
``max_probability``): the branch most surprised by the frame speaks for it.
Which branch that was is kept, so a flag can say who raised it.

Taking the largest of two probabilities makes normal driving look more
surprising than either branch alone, so the on level is fitted on the
fused evidence itself: the branches' held-out normal blocks, paired frame
by frame (they come from the same time-block split of the same bags), run
through :class:`~.hazard.HazardFilter` as in
:func:`~.hazard.on_probability_for_rate`.
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
import math

import numpy as np

from .hazard import HazardFilter

RULES = ('max_probability',)


@dataclasses.dataclass
class FusedState:
    """The fused flag after one frame."""

    flag: bool
    probability: float      # the fused evidence of this frame (before smoothing)
    smoothed: float
    changed: bool
    source: str             # the branch whose probability was the largest


def fuse(probabilities, rule='max_probability'):
    """Return ``(fused probability, source branch)`` of ``{branch: probability}``.

    A missing or non-finite probability counts as 1 (fail-safe, as an
    unscorable frame does in the hazard filter).
    """
    if rule not in RULES:
        raise ValueError(f'unknown fusion rule {rule!r}; known: {", ".join(RULES)}')
    if not probabilities:
        raise ValueError('fusion needs at least one branch')
    best, source = -1.0, None
    for name in sorted(probabilities):
        p = probabilities[name]
        p = 1.0 if p is None or not math.isfinite(p) else float(p)
        if p > best:
            best, source = p, name
    return best, source


class FusedHazard:
    """Feed ``(stamp_ns, {branch: probability})`` in time order; get one flag."""

    def __init__(self, config, rule='max_probability'):
        fuse({'check': 0.0}, rule)
        self.rule = rule
        self.filter = HazardFilter(config)
        self.source = None          # who raised the flag that is on now

    @property
    def config(self):
        return self.filter.config

    def reset(self):
        self.filter.reset()
        self.source = None

    def update(self, stamp_ns, probabilities):
        p, source = fuse(probabilities, self.rule)
        state = self.filter.update(stamp_ns, p)
        if state.changed and state.flag:
            self.source = source
        elif not state.flag:
            self.source = None
        return FusedState(state.flag, p, state.smoothed, state.changed,
                          self.source if state.flag else source)


def paired_heldout(sequences_per_branch, rule='max_probability'):
    """Return the fused ``[(stamps_ns, probabilities)]`` of branches' held-out blocks.

    ``sequences_per_branch``: ``{branch: [(stamps_ns, probabilities)]}``, one
    entry per held-out block, from the same split (block k of every branch
    covers the same frames). Frames are paired by stamp; a block's frames
    that a branch lacks are left out.

    Raises:
        ValueError: branches with different numbers of blocks.

    """
    names = sorted(sequences_per_branch)
    counts = {n: len(sequences_per_branch[n]) for n in names}
    if len(set(counts.values())) != 1:
        raise ValueError(f'the branches hold different held-out blocks: {counts}')
    out = []
    for blocks in zip(*(sequences_per_branch[n] for n in names)):
        common = None
        for stamps, _ in blocks:
            s = set(np.asarray(stamps, np.int64).tolist())
            common = s if common is None else common & s
        stamps = np.array(sorted(common), np.int64)
        probs = []
        for stamp in stamps.tolist():
            per = {}
            for name, (s, p) in zip(names, blocks):
                index = int(np.searchsorted(np.asarray(s, np.int64), stamp))
                per[name] = float(np.asarray(p)[index])
            probs.append(fuse(per, rule)[0])
        out.append((stamps, np.array(probs)))
    return out


@dataclasses.dataclass
class MonitorResult:
    """The fused flag at one stamp, and the evidence it was fused from."""

    stamp_ns: int
    state: FusedState
    evidence: dict          # {branch: probability} used at this stamp


class HazardMonitor:
    """Pair the branches' per-frame probabilities by stamp; run the fused flag over them.

    Each branch reports ``(stamp, probability)`` in its own stamp order
    (:meth:`add`); branches may skip frames (a rate-capped pixel node) and
    report in any interleaving. A stamp is decided once every branch has
    reported it or a later stamp (then it never will), or once the newest
    stamp seen is ``max_wait_s`` past it (a silent branch does not stall
    the flag). A branch without evidence at a stamp lends its latest earlier
    probability if at most ``max_age_s`` old, and is left out otherwise.
    Given the same reports per branch, none later than ``max_wait_s``
    behind the others, the decisions are the same whatever order they
    arrive in: the node and the replay agree.
    """

    def __init__(self, config, branches, rule='max_probability', max_age_s=1.0,
                 max_wait_s=2.0):
        if not branches:
            raise ValueError('the monitor needs at least one branch')
        self.hazard = FusedHazard(config, rule)
        self.branches = tuple(branches)
        self.max_age_ns = int(max_age_s * 1e9)
        self.max_wait_ns = int(max_wait_s * 1e9)
        self.reset()

    def reset(self):
        self.hazard.reset()
        self._pending = {}          # stamp -> {branch: probability}
        self._seen = {}             # branch -> newest stamp reported
        self._last = {}             # branch -> (stamp, probability) of decided stamps
        self._decided = None        # the newest stamp decided

    def add(self, branch, stamp_ns, probability):
        """Add one branch's probability at ``stamp_ns``; return the stamps decided now, in order.

        A branch reporting a stamp before its previous one (a bag looped)
        starts the monitor over.
        """
        if branch not in self.branches:
            raise ValueError(f'unknown branch {branch!r}; the monitor fuses '
                             f'{", ".join(self.branches)}')
        stamp_ns = int(stamp_ns)
        if stamp_ns < self._seen.get(branch, stamp_ns):
            self.reset()            # this branch went back in time: a new run
        self._seen[branch] = max(self._seen.get(branch, stamp_ns), stamp_ns)
        if self._decided is None or stamp_ns > self._decided:
            self._pending.setdefault(stamp_ns, {})[branch] = probability
        # else: a report for a stamp decided without it (it came after max_wait_s): dropped
        return self._decide()

    def _ready(self, stamp):
        newest = max(self._seen.values())
        if newest - stamp >= self.max_wait_ns:
            return True
        have = self._pending[stamp]
        return all(b in have or self._seen.get(b, -1) > stamp for b in self.branches)

    def _decide(self):
        out = []
        for stamp in sorted(self._pending):
            if not self._ready(stamp):
                break
            evidence = dict(self._pending.pop(stamp))
            for b, p in evidence.items():
                self._last[b] = (stamp, p)
            for b in self.branches:
                last = self._last.get(b)
                if b not in evidence and last is not None and stamp - last[0] <= self.max_age_ns:
                    evidence[b] = last[1]
            self._decided = stamp
            out.append(MonitorResult(stamp, self.hazard.update(stamp, evidence), evidence))
        return out

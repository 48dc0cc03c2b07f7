"""Event-level evaluation of a hazard flag over time.

An *event* is a run of consecutive frames labelled with the same anomaly
type (runs of one type less than ``grace_s`` apart count as one). The flag
**detects** an event if it is on at any frame from the event's start to
``grace_s`` after its end; the **detection delay** is the time from the
event's start to the first such frame (0 if the flag was already on).
*Normal driving* is every frame outside the events widened by ``grace_s`` on
both sides. A **false alarm** is a flag episode (off -> on -> off) that
overlaps no widened event, or, for an episode that does overlap one, each
stretch of it over normal driving longer than ``release_s``: an alarm that
stays on long after its hazard is gone is charged, so a flag that never
turns off scores one false alarm per stretch of normal driving between
events, not none (the hazard filter's own release, ``min_off_s`` after the
hazard, is not). The rate is per hour of normal driving;
``alarm_time_fraction`` is the share of normal driving time with the flag
on, every second of it counted.
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

import numpy as np


@dataclasses.dataclass(frozen=True)
class Event:
    start_ns: int
    end_ns: int
    label: str


def label_events(stamps_ns, labels, merge_gap_s=0.0):
    """Return the runs of consecutive non-normal frames with the same label.

    Runs of the same label less than ``merge_gap_s`` apart are one event: a
    cable that drops below the labelling's visibility threshold for half a
    second is still one cable.
    """
    events, start, current, last = [], None, None, None
    for stamp, label in zip(stamps_ns, labels):
        if label != current:
            if current not in (None, 'normal'):
                events.append(Event(start, last, current))
            start, current = stamp, label
        last = stamp
    if current not in (None, 'normal'):
        events.append(Event(start, last, current))
    merged = []
    for ev in events:
        if (merged and merged[-1].label == ev.label
                and ev.start_ns - merged[-1].end_ns < merge_gap_s * 1e9):
            merged[-1] = Event(merged[-1].start_ns, ev.end_ns, ev.label)
        else:
            merged.append(ev)
    return merged


def flag_episodes(stamps_ns, flags):
    """``[(start_ns, end_ns)]`` of consecutive frames with the flag on."""
    episodes, start, last = [], None, None
    for stamp, flag in zip(stamps_ns, flags):
        if flag and start is None:
            start = stamp
        if not flag and start is not None:
            episodes.append((start, last))
            start = None
        last = stamp
    if start is not None:
        episodes.append((start, last))
    return episodes


def event_metrics(stamps_ns, labels, flags, grace_s=1.0, release_s=5.0):
    """Event recall, detection delay and false alarms per hour (see module docs)."""
    stamps = np.asarray(stamps_ns, np.int64)
    flags = np.asarray(flags, bool)
    grace = int(grace_s * 1e9)
    events = label_events(stamps, labels, merge_gap_s=grace_s)
    per_event = []
    for ev in events:
        window = (stamps >= ev.start_ns) & (stamps <= ev.end_ns + grace)
        hits = np.flatnonzero(window & flags)
        delay = (stamps[hits[0]] - ev.start_ns) / 1e9 if hits.size else None
        per_event.append({'label': ev.label, 'start_s': (ev.start_ns - stamps[0]) / 1e9,
                          'end_s': (ev.end_ns - stamps[0]) / 1e9,
                          'detected': bool(hits.size), 'delay_s': delay})
    normal = np.ones(stamps.size, bool)
    for ev in events:
        normal &= ~((stamps >= ev.start_ns - grace) & (stamps <= ev.end_ns + grace))
    # Each frame stands for the time until the next one (the last: the median period).
    period = np.diff(stamps, append=stamps[-1] + (int(np.median(np.diff(stamps)))
                                                  if stamps.size > 1 else 0))
    normal_s = float(period[normal].sum()) / 1e9
    alarm_s = float(period[normal & flags].sum()) / 1e9
    false_alarms = 0
    index = {int(s): i for i, s in enumerate(stamps)}
    for start, end in flag_episodes(stamps, flags):
        lo, hi = index[int(start)], index[int(end)] + 1
        inside = normal[lo:hi]
        if inside.all():
            false_alarms += 1
            continue
        # Stretches of normal driving inside an episode that also covers an event.
        edges = np.flatnonzero(np.diff(np.concatenate([[0], inside.astype(np.int8), [0]])))
        for a, b in zip(edges[::2], edges[1::2]):
            if period[lo + a:lo + b].sum() / 1e9 > release_s:
                false_alarms += 1
    normal_h = normal_s / 3600
    delays = [e['delay_s'] for e in per_event if e['delay_s'] is not None]
    detected = sum(e['detected'] for e in per_event)
    return {
        'n_events': len(events), 'detected': detected,
        'recall': detected / len(events) if events else float('nan'),
        'detection_delay_s': {'median': float(np.median(delays)) if delays else float('nan'),
                              'mean': float(np.mean(delays)) if delays else float('nan')},
        'false_alarms': false_alarms, 'normal_hours': normal_h,
        'false_alarms_per_hour': false_alarms / normal_h if normal_h > 0 else float('nan'),
        'alarm_time_fraction': alarm_s / normal_s if normal_s > 0 else float('nan'),
        'grace_s': grace_s, 'release_s': release_s, 'events': per_event,
    }

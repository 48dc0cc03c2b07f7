"""Exception types of the package.

Every error a user can cause (a bad file, a bad message, a bad parameter) is
raised as a subclass of :class:`AnomalyPerceptionError` with a message that
says what was expected, what was found, and which file/topic/key it concerns.
The CLI prints such errors as one line; anything else is a bug and keeps its
traceback.
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


class AnomalyPerceptionError(Exception):
    """Base class of all errors the package reports to its users."""


class UsageError(AnomalyPerceptionError):
    """Options that parse but do not go together."""


class ConfigError(AnomalyPerceptionError, ValueError):
    """A configuration file or parameter is invalid."""


class ImageMessageError(AnomalyPerceptionError, ValueError):
    """An image message cannot be converted (bad size, encoding or data).

    ``kind`` names the defect in a few words that diagnostics count by
    (``'unknown encoding'``, ``'empty image'``, ``'wrong data length'``...).
    """

    def __init__(self, message, kind='malformed image'):
        super().__init__(message)
        self.kind = kind


class BagError(AnomalyPerceptionError):
    """A ROS 2 bag cannot be opened, read or written."""


class TopicNotFoundError(BagError, KeyError):
    """A requested topic is not in the bag."""

    def __str__(self):
        # KeyError quotes its message; keep it a plain sentence.
        return str(self.args[0]) if self.args else ''

"""The exceptions lite-debug raises.

Every message is a full sentence that says what was wrong and what to do about it, so that
the dashboard and the command line can show it as it is::

    LiteDebugError
    ├── ModelLoadError     the bytes are not a TFLite model we can read
    ├── DataLoadError      a sample-data file cannot be read as arrays
    ├── FixError           a fix cannot be applied to the data it was given
    ├── BundleError        a bug-report bundle is malformed or over a limit
    ├── StoreError         a saved case cannot be stored, found or restored
    └── WorkerError        the worker process could not be started or talked to

A diagnosis is data (a list of ``Mismatch`` records), not an exception, and a failed run is a
``RunResult`` whose status says so: only what stops lite-debug itself from working is raised.
"""

from __future__ import annotations

__all__ = [
    "BundleError",
    "DataLoadError",
    "FixError",
    "LiteDebugError",
    "ModelLoadError",
    "StoreError",
    "WorkerError",
]


class LiteDebugError(Exception):
    """Base class: something lite-debug was asked to do cannot be done."""


class ModelLoadError(LiteDebugError):
    """The model file is empty, truncated, or not a TFLite flatbuffer."""


class DataLoadError(LiteDebugError):
    """A sample-data file is unreadable, malformed, or of a kind we refuse to load."""


class FixError(LiteDebugError):
    """A fix does not apply to the data it was given."""


class BundleError(LiteDebugError):
    """A bug-report bundle is malformed, unsafe, or larger than the limits allow."""


class StoreError(LiteDebugError):
    """A case could not be saved, found, or restored intact from the case store."""


class WorkerError(LiteDebugError):
    """The worker process that runs the interpreter could not be started or reached."""

"""psmq from Python: the worker library of the psmq parameter server.

    import numpy as np
    import psmq

    with psmq.Worker("tcp://127.0.0.1:5555", rank=0, workers=2) as worker:
        w = np.zeros((784, 10), dtype=np.float32)
        worker.init("w", w, optimizer="sgd", lr=0.1)
        for step in range(100):
            worker.push("w", gradient(w))   # gradients of this clock
            worker.clock()                  # BSP: every worker finished it
            worker.pull("w", out=w)         # the new parameters, into w

Worker, Ticket, info(): psmq.worker; the exceptions: psmq.errors. See
docs/python.md for the whole API and the lifetime rules of the arrays.
"""

from ._lib import lib as _library
from ._lib import path as library_path
from .errors import (BrokerError, ClockError, ConnectionError, Error, FullError, GroupError,
                     InterruptedError, InvalidArgument, KeyExistsError, MalformedError,
                     MessageTypeError, NonFiniteError, NotRegisteredError, OptimizerError,
                     OutOfMemory, ProtocolError, RankError, RejoinedError, ShutdownError,
                     SizeError, Status, TicketError, TimeoutError, TooLargeError,
                     UnknownKeyError, VersionError, error_class, strerror)
from .memory import keep_memory_mapped
from .worker import LogLevel, Optimizer, Ticket, Worker, config, info

#  The library's: the one version of psmq is its CMake project's
__version__ = _library.ps_worker_version().decode("ascii")

__all__ = [
    "BrokerError", "ClockError", "ConnectionError", "Error", "FullError", "GroupError",
    "InterruptedError", "InvalidArgument", "KeyExistsError", "LogLevel", "MalformedError",
    "MessageTypeError", "NonFiniteError", "NotRegisteredError", "Optimizer", "OptimizerError",
    "OutOfMemory", "ProtocolError", "RankError", "RejoinedError", "ShutdownError", "SizeError",
    "Status", "Ticket", "TicketError", "TimeoutError", "TooLargeError", "UnknownKeyError",
    "VersionError", "Worker", "config", "error_class", "info", "keep_memory_mapped", "library_path",
    "strerror",
]

"""psmq's exceptions: one class per status of ps_status_t (worker/ps_worker.h).

Every failure of the library is raised as a psmq.Error, or a subclass that
names its family, with

  status   the ps_status_t, a negative int (Status.ETIMEOUT, ...)
  message  the library's detail of this failure (ps_worker_error: for the
           errors the broker reported, the broker's own words, e.g. "key
           'w' exists with 4 floats; this INIT asks 5"), or ps_strerror's
           description when the library recorded none
  name     the status's C name, e.g. "PS_ETIMEOUT"

The families also derive from the builtin exception a Python programmer
would catch for them: psmq.TimeoutError is a builtins.TimeoutError,
psmq.ConnectionError a builtins.ConnectionError, psmq.InvalidArgument a
ValueError, and so on. Every error the broker reported (its ERROR reply,
statuses -101 .. -115) is a psmq.BrokerError.
"""

import builtins
import enum

from . import _lib


class Status(enum.IntEnum):
    """ps_status_t"""

    OK = 0
    EINVAL = -1
    ENOMEM = -2
    ETIMEOUT = -3
    ECONNECT = -4
    EPROTO = -5
    ETICKET = -6
    EINTR = -7
    EREJOINED = -8
    EMALFORMED = -101
    EVERSION = -102
    ETYPE = -103
    EUNKNOWN_KEY = -104
    ESIZE = -105
    ETOO_LARGE = -106
    ECLOCK = -107
    ENOT_REGISTERED = -108
    ERANK = -109
    EKEY_EXISTS = -110
    EOPTIM = -111
    EFULL = -112
    ESHUTDOWN = -113
    EGROUP = -114
    ENONFINITE = -115


def strerror(status):
    """ps_strerror: a short description of a status."""
    return _lib.lib.ps_strerror(int(status)).decode("utf-8", "replace")


class Error(Exception):
    """A failure of the worker library: Error(status, message)."""

    def __init__(self, status, message=None):
        status = int(status)
        if not message:
            message = strerror(status)
        super().__init__(status, message)
        self.status = status
        self.message = message

    @property
    def name(self):
        try:
            return "PS_" + Status(self.status).name
        except ValueError:
            return "status %d" % self.status

    def __str__(self):
        return "%s (%s)" % (self.message, self.name)


class InvalidArgument(Error, builtins.ValueError):
    """PS_EINVAL: a bad argument, e.g. a key file that cannot be read as a key"""


class OutOfMemory(Error, builtins.MemoryError):
    """PS_ENOMEM"""


class TimeoutError(Error, builtins.TimeoutError):
    """PS_ETIMEOUT: no reply, or no room to send, within the timeout"""


class ConnectionError(Error, builtins.ConnectionError):
    """PS_ECONNECT: no connection, the broker's connection lost, or the
    broker refused this one ("the broker refused this connection: ...")"""


class ProtocolError(Error):
    """PS_EPROTO: a reply that does not parse or does not fit the request"""


class TicketError(Error):
    """PS_ETICKET: unknown or already collected ticket"""


class InterruptedError(Error, builtins.InterruptedError):
    """PS_EINTR: interrupted by a signal"""


class RejoinedError(Error):
    """PS_EREJOINED: the worker registered again after a broker restart or
    an eviction; the request's outcome is void. clock is the worker's clock
    then: redo the steps from there (see Rejoining in ps_worker.h)."""

    clock = None


class BrokerError(Error):
    """An error the broker reported, in its own words (message)."""


class MalformedError(BrokerError):
    """PS_EMALFORMED: the broker could not parse our message"""


class VersionError(BrokerError):
    """PS_EVERSION: protocol version mismatch"""


class MessageTypeError(BrokerError):
    """PS_ETYPE: message type not accepted"""


class UnknownKeyError(BrokerError):
    """PS_EUNKNOWN_KEY: key never initialised"""


class SizeError(BrokerError):
    """PS_ESIZE: element count does not match the key"""


class TooLargeError(BrokerError):
    """PS_ETOO_LARGE: over a broker limit"""


class ClockError(BrokerError):
    """PS_ECLOCK: clock mismatch"""


class NotRegisteredError(BrokerError):
    """PS_ENOT_REGISTERED: not registered (or evicted)"""


class RankError(BrokerError):
    """PS_ERANK: rank or world size refused"""


class KeyExistsError(BrokerError):
    """PS_EKEY_EXISTS: the key exists with another size or other settings"""


class OptimizerError(BrokerError):
    """PS_EOPTIM: optimizer settings refused"""


class FullError(BrokerError):
    """PS_EFULL: the broker cannot take more"""


class ShutdownError(BrokerError):
    """PS_ESHUTDOWN: the broker is stopping"""


class GroupError(BrokerError):
    """PS_EGROUP: the brokers' group differs from the worker's"""


class NonFiniteError(BrokerError):
    """PS_ENONFINITE: a push held a NaN or an infinity and was not applied
    (reported by the next clock, which still advanced)"""


_CLASSES = {
    Status.EINVAL: InvalidArgument,
    Status.ENOMEM: OutOfMemory,
    Status.ETIMEOUT: TimeoutError,
    Status.ECONNECT: ConnectionError,
    Status.EPROTO: ProtocolError,
    Status.ETICKET: TicketError,
    Status.EINTR: InterruptedError,
    Status.EREJOINED: RejoinedError,
    Status.EMALFORMED: MalformedError,
    Status.EVERSION: VersionError,
    Status.ETYPE: MessageTypeError,
    Status.EUNKNOWN_KEY: UnknownKeyError,
    Status.ESIZE: SizeError,
    Status.ETOO_LARGE: TooLargeError,
    Status.ECLOCK: ClockError,
    Status.ENOT_REGISTERED: NotRegisteredError,
    Status.ERANK: RankError,
    Status.EKEY_EXISTS: KeyExistsError,
    Status.EOPTIM: OptimizerError,
    Status.EFULL: FullError,
    Status.ESHUTDOWN: ShutdownError,
    Status.EGROUP: GroupError,
    Status.ENONFINITE: NonFiniteError,
}


def error_class(status):
    """The class psmq raises for a status."""
    status = int(status)
    cls = _CLASSES.get(status)
    if cls is None:
        #  A status a newer library added: still an Error, and a BrokerError
        #  when it is one of the broker's codes (-100 - code)
        cls = BrokerError if status <= -100 else Error
    return cls


def make_error(status, message=None):
    """The exception for a status, with the library's detail."""
    return error_class(status)(status, message)

"""libpsworker through ctypes: finding the library, its structs, its prototypes.

This is the only module that knows the C ABI of worker/ps_worker.h. The
structs below mirror the header field by field, in order; tests/python/
test_layout.py compiles a C program that prints every sizeof and offsetof
and compares them with these, so a field added to the header without being
added here fails a test instead of shifting every field after it.

Why ctypes and not cffi: ctypes is in the standard library, so the binding
needs nothing beyond Debian's python3 and python3-numpy. cffi's ABI mode
(Debian's python3-cffi, one more package to install) would parse the
header's declarations instead of our restating them, but its calls are no
faster in ABI mode, and the layout test catches what restating could get
wrong.

Every function is called through a ctypes.CDLL, which releases the GIL for
the duration of the call: a blocking push, pull or clock lets the other
Python threads run.

Where the library is looked for, in order (the first that loads wins):
  1. $PSMQ_LIBRARY, a path to libpsworker.so; when set, nothing else is tried
  2. next to the package: libpsworker.so.0 in this folder, then the path
     that `cmake --install` wrote into _install.py
  3. the build tree: $PSMQ_BUILD_DIR, then build/ at the top of the source
     tree this package sits in (python/psmq/../../build)
  4. ctypes.util.find_library("psworker"), the system's linker path
"""

import ctypes
import ctypes.util
import os

LIBRARY_NAME = "libpsworker.so.0"

_HERE = os.path.dirname(os.path.abspath(__file__))


def _candidates():
    """(where, path or name) pairs, in the order they are tried."""
    env = os.environ.get("PSMQ_LIBRARY")
    if env:
        return [("$PSMQ_LIBRARY", env)]
    found = [("next to the package", os.path.join(_HERE, LIBRARY_NAME))]
    try:
        from . import _install  # written by cmake --install

        found.append(("where cmake --install put it", _install.LIBRARY))
    except ImportError:
        pass
    build = os.environ.get("PSMQ_BUILD_DIR")
    if build:
        found.append(("$PSMQ_BUILD_DIR", os.path.join(build, LIBRARY_NAME)))
    source_build = os.path.join(os.path.dirname(os.path.dirname(_HERE)), "build")
    found.append(("the source tree's build directory", os.path.join(source_build, LIBRARY_NAME)))
    system = ctypes.util.find_library("psworker")
    found.append(("ctypes.util.find_library('psworker')", system))
    return found


def _without_asan_runtime(path):
    """True for a library built with AddressSanitizer (PSMQ_ASAN) in a
    process that did not preload its runtime: loading it would not fail,
    the runtime would end the process."""
    try:
        with open(path, "rb") as f:
            if b"libasan.so" not in f.read():
                return False
        with open("/proc/self/maps") as f:
            return "libasan" not in f.read()
    except OSError:
        return False


def _load():
    """The loaded library and the path it came from; ImportError naming every
    place looked at, and why each failed, when none loads."""
    tried = []
    for where, path in _candidates():
        if path is None:
            tried.append("%s: found nothing" % where)
            continue
        if os.sep in path and not os.path.exists(path):
            tried.append("%s: %s does not exist" % (where, path))
            continue
        if os.sep in path and _without_asan_runtime(path):
            tried.append("%s: %s is built with AddressSanitizer, whose runtime must come "
                         "first: run python with LD_PRELOAD=$(gcc -print-file-name=libasan.so) "
                         "ASAN_OPTIONS=detect_leaks=0" % (where, path))
            continue
        try:
            return ctypes.CDLL(path), path
        except OSError as error:
            tried.append("%s: %s: %s" % (where, path, error))
    raise ImportError(
        "psmq cannot load the worker library libpsworker; it looked at:\n  "
        + "\n  ".join(tried)
        + "\nBuild psmq (cmake -S . -B build && cmake --build build), install it "
        "(cmake --install build), or set PSMQ_LIBRARY to the path of libpsworker.so"
    )


lib, path = _load()

#  The log callback: void (*log) (void *arg, int level, const char *message)
LOG_FUNC = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_int, ctypes.c_char_p)


class Options(ctypes.Structure):
    """ps_worker_options_t"""

    _fields_ = [
        ("broker", ctypes.c_char_p),
        ("rank", ctypes.c_uint32),
        ("world_size", ctypes.c_uint32),
        ("timeout_ms", ctypes.c_int),
        ("clock_timeout_ms", ctypes.c_int),
        ("local_workers", ctypes.c_uint32),
        ("log", LOG_FUNC),
        ("log_arg", ctypes.c_void_p),
        ("wait_for_broker_ms", ctypes.c_int),
        ("heartbeat_timeout_ms", ctypes.c_int),
        ("curve_secret", ctypes.c_char_p),
        ("broker_key", ctypes.c_char_p),
    ]


class OptimSettings(ctypes.Structure):
    """ps_optim_settings_t (kind is the enum ps_optimizer_t, an int)"""

    _fields_ = [
        ("kind", ctypes.c_int),
        ("lr", ctypes.c_float),
        ("momentum", ctypes.c_float),
        ("beta1", ctypes.c_float),
        ("beta2", ctypes.c_float),
        ("eps", ctypes.c_float),
        ("decay_steps", ctypes.c_uint64),
    ]


class Tensor(ctypes.Structure):
    """ps_tensor_t; data is float * in C, an address here (numpy's)"""

    _fields_ = [
        ("key", ctypes.c_char_p),
        ("data", ctypes.c_void_p),
        ("count", ctypes.c_size_t),
    ]


class ViewPiece(ctypes.Structure):
    """ps_view_piece_t; data is const float * in C, an address here"""

    _fields_ = [
        ("tensor", ctypes.c_size_t),
        ("offset", ctypes.c_size_t),
        ("count", ctypes.c_size_t),
        ("data", ctypes.c_void_p),
    ]


class Setting(ctypes.Structure):
    """ps_worker_setting_t"""

    _fields_ = [
        ("name", ctypes.c_char * 32),
        ("value", ctypes.c_char * 256),
        ("source", ctypes.c_char * 64),
    ]


#  PS_SETTINGS, and the bits of ps_worker_options_from_environment's given
SETTINGS = 7
GIVEN_BROKER = 0x01
GIVEN_RANK = 0x02
GIVEN_WORLD_SIZE = 0x04
GIVEN_CURVE_SECRET = 0x08
GIVEN_BROKER_KEY = 0x10
GIVEN_WAIT_FOR_BROKER = 0x20
#  PS_WORKER_ANY_RANK
ANY_RANK = 0xFFFFFFFF


class Config(ctypes.Structure):
    """ps_worker_config_t"""

    _fields_ = [
        ("settings", Setting * SETTINGS),
        ("launcher", ctypes.c_char * 32),
        ("error", ctypes.c_char * 512),
    ]


_handle = ctypes.c_void_p
_status = ctypes.c_int
_ticket_p = ctypes.POINTER(ctypes.c_uint64)
_json_p = ctypes.POINTER(ctypes.c_void_p)  # char **, freed with free ()
_tensors = ctypes.POINTER(Tensor)


def _declare(name, restype, *argtypes):
    function = getattr(lib, name)
    function.restype = restype
    function.argtypes = list(argtypes)


_declare("ps_strerror", ctypes.c_char_p, ctypes.c_int)
_declare("ps_worker_version", ctypes.c_char_p)
_declare("ps_worker_keep_memory_mapped", ctypes.c_int)
_declare("ps_worker_options_init", None, ctypes.POINTER(Options))
#  The lookup is NULL here: the process environment, which os.environ
#  writes through to (putenv)
_declare("ps_worker_options_from_environment", _status, ctypes.POINTER(Options), ctypes.c_uint,
         ctypes.c_void_p, ctypes.c_void_p, ctypes.POINTER(Config))
_declare("ps_worker_connect", _handle, ctypes.POINTER(Options), ctypes.POINTER(ctypes.c_int))
_declare("ps_worker_close", _status, ctypes.POINTER(_handle))
_declare("ps_worker_rank", ctypes.c_uint32, _handle)
_declare("ps_worker_world_size", ctypes.c_uint32, _handle)
_declare("ps_worker_shards", ctypes.c_uint32, _handle)
_declare("ps_worker_staleness", ctypes.c_int32, _handle)
_declare("ps_worker_current_clock", ctypes.c_int64, _handle)
_declare("ps_worker_min_clock", ctypes.c_int64, _handle)
_declare("ps_worker_error", ctypes.c_char_p, _handle)
_declare("ps_worker_init", _status, _handle, ctypes.c_char_p, ctypes.c_size_t, ctypes.c_void_p,
         ctypes.POINTER(OptimSettings))
_declare("ps_worker_init_wire", _status, _handle, ctypes.c_char_p, ctypes.c_size_t,
         ctypes.c_void_p, ctypes.POINTER(OptimSettings), ctypes.c_int)
_declare("ps_worker_push", _status, _handle, _tensors, ctypes.c_size_t, ctypes.c_uint32)
_declare("ps_worker_pull", _status, _handle, _tensors, ctypes.c_size_t)
_declare("ps_worker_clock", _status, _handle)
_declare("ps_view_new", ctypes.c_void_p)
_declare("ps_view_destroy", None, ctypes.POINTER(ctypes.c_void_p))
_declare("ps_view_pieces", ctypes.c_size_t, ctypes.c_void_p)
_declare("ps_view_piece", ctypes.POINTER(ViewPiece), ctypes.c_void_p, ctypes.c_size_t)
_declare("ps_worker_pull_view", _status, _handle, _tensors, ctypes.c_size_t, ctypes.c_void_p)
_declare("ps_worker_push_clock", _status, _handle, _tensors, ctypes.c_size_t, ctypes.c_uint32)
_declare("ps_worker_push_clock_async", _status, _handle, _tensors, ctypes.c_size_t,
         ctypes.c_uint32, _ticket_p)
_declare("ps_worker_push_async", _status, _handle, _tensors, ctypes.c_size_t, ctypes.c_uint32,
         _ticket_p)
_declare("ps_worker_push_lend_async", _status, _handle, _tensors, ctypes.c_size_t,
         ctypes.c_uint32, _ticket_p)
_declare("ps_worker_push_clock_lend_async", _status, _handle, _tensors, ctypes.c_size_t,
         ctypes.c_uint32, _ticket_p)
_declare("ps_worker_pull_async", _status, _handle, _tensors, ctypes.c_size_t, _ticket_p)
_declare("ps_worker_clock_async", _status, _handle, _ticket_p)
_declare("ps_worker_wait", _status, _handle, ctypes.c_uint64, ctypes.c_int)
_declare("ps_worker_pending", ctypes.c_size_t, _handle)
_declare("ps_worker_info", _status, _handle, _json_p)
_declare("ps_worker_info_shard", _status, _handle, ctypes.c_uint32, _json_p)
_declare("ps_worker_query_info", _status, ctypes.c_char_p, ctypes.c_int, _json_p)
_declare("ps_worker_query_info_options", _status, ctypes.POINTER(Options), _json_p)
#  The JSON the library hands over is malloc'ed by it: free it with the free
#  the library itself links (an instrumented one in sanitizer builds)
_declare("free", None, ctypes.c_void_p)


def take_json(pointer):
    """The text of a char * the library allocated, which is then freed."""
    if not pointer.value:
        return None
    try:
        return ctypes.string_at(pointer.value).decode("utf-8", "replace")
    finally:
        lib.free(pointer.value)
        pointer.value = None

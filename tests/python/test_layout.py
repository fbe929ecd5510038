"""The ctypes mirror of worker/ps_worker.h is the header's ABI: every struct's
size and every field's offset as a C compiler lays them out, every status
and optimizer value as the header defines them."""

import ctypes
import os
import re
import shutil
import subprocess

import pytest

import psmq
from psmq import _lib

from conftest import SOURCE_DIR

HEADER_DIR = os.path.join(SOURCE_DIR, "worker")

STRUCTS = {
    "ps_worker_options_t": _lib.Options,
    "ps_optim_settings_t": _lib.OptimSettings,
    "ps_tensor_t": _lib.Tensor,
    "ps_worker_setting_t": _lib.Setting,
    "ps_worker_config_t": _lib.Config,
}


@pytest.fixture(scope="module")
def c_layout(tmp_path_factory):
    """{(struct, field or "sizeof"): value} printed by a C program."""
    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        pytest.fail("no C compiler: tools/setup installs gcc")
    lines = ["#include <stdio.h>", "#include <stddef.h>", "#include <ps_worker.h>",
             "int main (void) {"]
    for struct, mirror in STRUCTS.items():
        lines.append('printf ("%s sizeof %%zu\\n", sizeof (%s));' % (struct, struct))
        for field, _ in mirror._fields_:
            lines.append('printf ("%s %s %%zu\\n", offsetof (%s, %s));'
                         % (struct, field, struct, field))
    lines += ["return 0; }"]
    folder = tmp_path_factory.mktemp("layout")
    source, program = folder / "layout.c", folder / "layout"
    source.write_text("\n".join(lines))
    subprocess.run([cc, "-I", HEADER_DIR, str(source), "-o", str(program)], check=True,
                   timeout=60)
    out = subprocess.run([str(program)], check=True, capture_output=True, text=True, timeout=10)
    return {(s, f): int(v) for s, f, v in (line.split() for line in out.stdout.splitlines())}


@pytest.mark.parametrize("struct", sorted(STRUCTS))
def test_struct_layout_matches_the_header(c_layout, struct):
    mirror = STRUCTS[struct]
    assert ctypes.sizeof(mirror) == c_layout[(struct, "sizeof")]
    for field, _ in mirror._fields_:
        assert getattr(mirror, field).offset == c_layout[(struct, field)], field


def _header_enum(prefix):
    with open(os.path.join(HEADER_DIR, "ps_worker.h")) as f:
        text = f.read()
    return {name: int(value) for name, value in re.findall(r"\b(%s\w+)\s*=\s*(-?\d+)" % prefix,
                                                          text)}


def test_every_status_of_the_header_has_its_class():
    statuses = _header_enum("PS_E") | {"PS_OK": 0}
    assert {"PS_" + s.name: int(s) for s in psmq.Status} == statuses
    for name, value in statuses.items():
        if value == 0:
            continue
        cls = psmq.error_class(value)
        assert issubclass(cls, psmq.Error)
        #  Every status has a class of its own (not the fallback)
        assert cls is not psmq.Error and cls is not psmq.BrokerError, name
        assert issubclass(cls, psmq.BrokerError) == (value <= -100), name
        error = cls(value, "detail")
        assert error.status == value and error.name == name and error.message == "detail"
        assert psmq.strerror(value)  # ps_strerror names it


def test_optimizers_and_log_levels_match_the_header():
    assert {"PS_OPTIMIZER_" + o.name: int(o) for o in psmq.Optimizer} == \
        _header_enum("PS_OPTIMIZER_")
    assert {"PS_WORKER_LOG_" + o.name: int(o) for o in psmq.LogLevel} == \
        _header_enum("PS_WORKER_LOG_")


def test_builtin_families():
    assert issubclass(psmq.TimeoutError, TimeoutError)
    assert issubclass(psmq.ConnectionError, ConnectionError)
    assert issubclass(psmq.InvalidArgument, ValueError)
    assert psmq.error_class(-3) is psmq.TimeoutError
    assert psmq.error_class(-104) is psmq.UnknownKeyError
    assert str(psmq.Error(-3)) == "%s (PS_ETIMEOUT)" % psmq.strerror(-3)

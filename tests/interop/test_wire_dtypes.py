"""Keys in bf16 and f16 on the wire, from PROTOCOL.md's "Wire dtypes" alone.

A client INITs a key with dtype BF16 or F16; its PUSH and PULL slices name
the dtype and its frames hold 2-byte little-endian elements, rounded to
nearest even (computed here with numpy, independently of the broker's C).
A slice in another dtype is refused, naming the key.

usage: /usr/bin/python3 -B -m pytest -q -p no:cacheprovider tests/interop/test_wire_dtypes.py
"""

import numpy as np

from psclient import f32

SIZE = 300000      # more than one 1 MB slice of f32, and of 2-byte elements


def bf16_bytes(values):
    """float32 -> bfloat16 (round to nearest even) as little-endian bytes."""
    bits = f32(values).view("<u4").astype(np.uint64)
    rounded = ((bits + 0x7fff + ((bits >> 16) & 1)) >> 16).astype("<u2")
    return rounded.tobytes()


def bf16_values(data):
    return (np.frombuffer(data, dtype="<u2").astype("<u4") << 16).view("<f4")


def slices(pb, key, count, dtype, chunk):
    return [pb.Slice(key=key, offset=off, count=min(chunk, count - off), total=count, dtype=dtype)
            for off in range(0, count, chunk)]


def test_bf16_key_init_push_pull(pb, workers):
    b, (c,) = workers(1, "--lr", 0.5)
    value = np.linspace(-4, 4, SIZE, dtype="<f4")
    raw = bf16_bytes(value)
    chunk = 1 << 18
    init = slices(pb, "w", SIZE, pb.BF16, chunk)
    frames = [raw[2 * s.offset:2 * (s.offset + s.count)] for s in init]
    c.ok(c.send(c.envelope(pb.INIT, slices=init), frames), pb.INIT)

    grad = np.cos(np.arange(SIZE, dtype="<f4"))
    graw = bf16_bytes(grad)
    push = [pb.Slice(key="w", offset=s.offset, count=s.count, dtype=pb.BF16) for s in init]
    c.ok(c.send(c.envelope(pb.PUSH, clock=0, grad_count=1, slices=push),
                [graw[2 * s.offset:2 * (s.offset + s.count)] for s in push]), pb.PUSH)
    c.clock()

    seq = c.send(c.envelope(pb.PULL, clock=1, slices=[pb.Slice(key="w", dtype=pb.BF16)]))
    reply = c.ok(seq, pb.PULL)
    got = np.full(SIZE, np.nan, dtype="<f4")
    for env, part in reply.parts:
        data = [s for s in env.slices if s.count]
        assert len(data) == len(part)
        for s, frame in zip(data, part):
            assert s.dtype == pb.BF16 and len(frame) == 2 * s.count
            got[s.offset:s.offset + s.count] = bf16_values(frame)
    #  The broker computed in float32 from the widened values, then rounded
    want = bf16_values(raw) - f32(0.5) * bf16_values(graw)
    assert np.array_equal(got, bf16_values(bf16_bytes(want)))


def test_f16_frames_are_ieee_half(pb, workers):
    b, (c,) = workers(1, "--lr", 1)
    value = np.array([1.0, -2.5, 65504.0, 6e-8], dtype="<f2")
    init = [pb.Slice(key="h", offset=0, count=4, total=4, dtype=pb.F16)]
    c.ok(c.send(c.envelope(pb.INIT, slices=init), [value.tobytes()]), pb.INIT)
    seq = c.send(c.envelope(pb.PULL, clock=0, slices=[pb.Slice(key="h", dtype=pb.F16)]))
    env, (frame,) = c.ok(seq, pb.PULL).parts[0]
    assert env.slices[0].dtype == pb.F16
    assert np.frombuffer(frame, dtype="<f2").tolist() == value.tolist()


def test_another_dtype_is_refused_naming_the_key(pb, workers):
    b, (c,) = workers(1)
    init = [pb.Slice(key="w", offset=0, count=0, total=4, dtype=pb.BF16)]
    c.ok(c.send(c.envelope(pb.INIT, slices=init)), pb.INIT)
    #  A push in f32 (the default dtype) of the bf16 key
    env = c.error(c.send_push({"w": [1, 2, 3, 4]}))
    assert env.error.code == pb.ERR_SIZE and "push of key 'w' in f32" in env.error.message, env
    env = c.error(c.send_pull(["w"]))
    assert env.error.code == pb.ERR_SIZE and "pull of key 'w' in f32" in env.error.message, env
    #  An INIT in another dtype
    env = c.error(c.send_init({"w": 4}))
    assert env.error.code == pb.ERR_KEY_EXISTS and "wire dtype bf16" in env.error.message, env
    #  A 2-byte frame announced as f32 does not fit its slice
    bad = [pb.Slice(key="w", offset=0, count=4, dtype=pb.F32)]
    env = c.error(c.send(c.envelope(pb.PUSH, clock=0, grad_count=1, slices=bad), [b"\0" * 8]))
    assert env.error.code == pb.ERR_SIZE, env

"""Large tensors and pipelined requests.

Tensors over 1 MB sent as slices of at most 1 MB (INIT and PUSH), PULL
replies in several parts (same seq, `more` on all but the last, slices of at
most 1 MB with `total`), ranges across slice boundaries, and several
requests in flight at once, their replies paired by seq.

usage: /usr/bin/python3 -B -m pytest -q -p no:cacheprovider tests/interop/test_tensors.py [-k <test>]
(Debian's python3, which has pytest; psbroker from PSMQ_BUILD_DIR, else build/)
"""

import numpy as np

from psclient import CHUNK_BYTES, CHUNK_ELEMS, f32

BIG = 3 * CHUNK_ELEMS + 12345          # 12 MB and a bit: four slices


def check_pull_parts(pb, reply, sizes):
    """The parts of a PULL reply follow PROTOCOL.md; returns their count."""
    parts = reply.parts
    seq = parts[0][0].seq
    for i, (env, frames) in enumerate(parts):
        assert env.type == pb.PULL and env.reply and env.seq == seq
        assert env.more == (i < len(parts) - 1), "part %d of %d: more=%s" % (i, len(parts), env.more)
        data = [s for s in env.slices if s.count > 0]
        assert len(frames) == len(data)
        for s, frame in zip(data, frames):
            assert s.count * 4 <= CHUNK_BYTES, "slice of %d elements" % s.count
            assert len(frame) == s.count * 4
            assert s.total == sizes[s.key]
        #  "messages of about 1 MB": no part carries much more than a slice
        assert sum(len(f) for f in frames) <= 2 * CHUNK_BYTES
    return len(parts)


def test_large_tensor_in_slices_and_parts(pb, workers):
    b, (c,) = workers(1, "--lr", 0.5)
    value = np.arange(BIG, dtype="<f4") % 1000
    seq = c.send_init({"big": value, "small": [1, 2]})
    c.ok(seq, pb.INIT)

    r = c.ok(c.send_pull(["big"]), pb.PULL)
    assert check_pull_parts(pb, r, {"big": BIG}) >= 4
    assert np.array_equal(r.tensors()["big"], value)

    grad = (np.arange(BIG, dtype="<f4") % 7) - 3
    c.push({"big": grad, "small": [2, 2]})
    c.clock()
    r = c.ok(c.send_pull(["small", "big"]), pb.PULL)
    check_pull_parts(pb, r, {"big": BIG, "small": 2})
    got = r.tensors()
    assert np.array_equal(got["big"], value - f32(0.5) * grad)
    assert got["small"].tolist() == [0, 1]


def test_push_slices_sent_as_one_message(pb, workers):
    """The slices of a push are one message: their frames in slice order."""
    b, (c,) = workers(1, "--lr", 1)
    n = CHUNK_ELEMS + 3
    c.init({"w": n})
    grad = np.ones(n, dtype="<f4")
    env = c.envelope(pb.PUSH, clock=0, grad_count=1, slices=[
        pb.Slice(key="w", offset=0, count=CHUNK_ELEMS), pb.Slice(key="w", offset=CHUNK_ELEMS, count=3)])
    c.ok(c.send(env, [grad[:CHUNK_ELEMS].tobytes(), f32([5, 6, 7]).tobytes()]), pb.PUSH)
    c.clock()
    got = c.pull(["w"])["w"]
    assert np.all(got[:CHUNK_ELEMS] == -1) and got[CHUNK_ELEMS:].tolist() == [-5, -6, -7]


def test_pull_ranges_across_slice_boundaries(pb, workers):
    b, (c,) = workers(1)
    value = np.arange(BIG, dtype="<f4")
    c.init({"big": value})
    for offset, count in [(CHUNK_ELEMS - 5, 10), (100, 2 * CHUNK_ELEMS), (BIG - 7, 0), (0, 1),
                          (CHUNK_ELEMS, CHUNK_ELEMS)]:
        r = c.ok(c.send_pull([("big", offset, count)]), pb.PULL)
        check_pull_parts(pb, r, {"big": BIG})
        end = BIG if count == 0 else offset + count
        slices = [s for env, _ in r.parts for s in env.slices]
        assert slices[0].offset == offset
        assert sum(s.count for s in slices) == end - offset
        frames = b"".join(f for _, fr in r.parts for f in fr)
        assert np.array_equal(np.frombuffer(frames, "<f4"), value[offset:end])


def test_pipelined_requests_paired_by_seq(pb, workers):
    """Several requests sent before any reply is read; replies found by seq."""
    b, (c,) = workers(1, "--staleness", -1, "--lr", 1)
    big = np.arange(BIG, dtype="<f4")
    c.init({"big": big, "w": [0, 0], "v": [5]})
    seqs = {}
    seqs["pull_big_1"] = c.send_pull(["big"])
    seqs["pull_w_0"] = c.send_pull(["w"])
    seqs["push_1"] = c.send_push({"big": np.ones(BIG), "w": [1, 2], "v": [0]})
    seqs["pull_big_2"] = c.send_pull(["big"])
    seqs["info"] = c.send_info()
    seqs["pull_v"] = c.send_pull(["v"])
    seqs["push_2"] = c.send_push({"big": np.ones(BIG), "w": [1, 2], "v": [1]})
    seqs["pull_w_2"] = c.send_pull(["w"])
    seqs["clock"] = c.send_clock(0)
    seqs["pull_big_3"] = c.send_pull(["big"])

    #  Read them in the reverse order: every earlier reply waits by its seq
    replies = {name: c.reply(seq) for name, seq in reversed(list(seqs.items()))}
    for name, r in replies.items():
        assert r.env.type != pb.ERROR, "%s: %s" % (name, r.env)
        assert r.env.seq == seqs[name]
    assert replies["clock"].env.clock == 1
    assert np.array_equal(replies["pull_big_1"].tensors()["big"], big)
    assert replies["pull_w_0"].tensors()["w"].tolist() == [0, 0]
    #  ASP: each push is applied on arrival, before any later pull is answered
    assert np.array_equal(replies["pull_big_2"].tensors()["big"], big - 1)
    assert replies["pull_v"].tensors()["v"].tolist() == [5]
    assert replies["pull_w_2"].tensors()["w"].tolist() == [-2, -4]
    assert np.array_equal(replies["pull_big_3"].tensors()["big"], big - 2)
    for name in ("pull_big_1", "pull_big_2", "pull_big_3"):
        check_pull_parts(pb, replies[name], {"big": BIG})


def test_seq_is_any_uint64(pb, workers):
    """seq is the client's to choose: any value comes back, in any order."""
    b, (c,) = workers(1)
    c.init({"w": [3]})
    seqs = [2 ** 64 - 1, 5, 2 ** 40 + 3, 5000]
    for seq in seqs:
        c.send(c.envelope(pb.PULL, seq=seq, slices=[pb.Slice(key="w")]))
    got = sorted(c.any_reply().env.seq for _ in seqs)
    assert got == sorted(seqs)


def test_interleaved_multipart_replies(pb, workers):
    """Parts of two large PULL replies in flight at once are told apart by seq."""
    b, (c,) = workers(1)
    value = np.arange(BIG, dtype="<f4")
    c.init({"big": value})
    seqs = [c.send_pull(["big"]) for _ in range(3)] + [c.send_pull([("big", 10, 3)])]
    for seq in seqs[:3]:
        assert np.array_equal(c.reply(seq).tensors()["big"], value)
    assert c.reply(seqs[3]).tensors()["big"][10:13].tolist() == [10, 11, 12]

"""psmq.Worker and psmq.config with their settings left to the environment
(ps_worker_options_from_environment through ctypes) and to the broker: the
same sources, in the same order, as psworker's."""

import os

import pytest

import psmq

TIMEOUT_MS = 5000

#  Every variable the library reads: the tests set theirs on a clean slate
VARIABLES = ["PSMQ_BROKER", "PSMQ_RANK", "PSMQ_WORKERS", "PSMQ_CURVE_SECRET", "PSMQ_BROKER_KEY",
             "PSMQ_WAIT_FOR_BROKER", "OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_SIZE",
             "OMPI_COMM_WORLD_LOCAL_RANK", "PMI_RANK", "PMI_SIZE", "MPI_LOCALRANKID", "RANK",
             "WORLD_SIZE", "LOCAL_RANK", "SLURM_PROCID", "SLURM_NTASKS", "SLURM_LOCALID",
             "JOB_COMPLETION_INDEX", "KUBERNETES_SERVICE_HOST", "HOSTNAME"]


@pytest.fixture
def env(monkeypatch):
    for name in VARIABLES:
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def test_config_names_each_source(env):
    env.setenv("PSMQ_BROKER", "tcp://10.0.0.1:5555")
    env.setenv("SLURM_PROCID", "2")
    env.setenv("SLURM_NTASKS", "4")
    env.setenv("SLURM_LOCALID", "0")
    settings = psmq.config()
    assert settings["broker"] == ("tcp://10.0.0.1:5555", "PSMQ_BROKER")
    assert settings["rank"] == ("2", "SLURM_PROCID")
    assert settings["world_size"] == ("4", "SLURM_NTASKS")
    assert settings["local_rank"] == ("0", "SLURM_LOCALID")
    assert settings["launcher"] == ("slurm", "")
    #  Arguments before the environment
    settings = psmq.config(rank=1, workers=2)
    assert settings["rank"] == ("1", "given")
    assert settings["world_size"] == ("2", "given")
    #  MPI before Slurm: mpirun inside an allocation
    env.setenv("OMPI_COMM_WORLD_RANK", "3")
    env.setenv("OMPI_COMM_WORLD_SIZE", "5")
    assert psmq.config()["rank"] == ("3", "OMPI_COMM_WORLD_RANK")


def test_nothing_found_leaves_rank_and_world_to_the_broker(env):
    env.setenv("KUBERNETES_SERVICE_HOST", "10.96.0.1")
    env.setenv("HOSTNAME", "web-7c9f8d-xk2p")
    settings = psmq.config("tcp://b:1")
    assert settings["rank"] == ("", "the broker")
    assert settings["world_size"] == ("", "the broker")
    assert settings["broker"] == ("tcp://b:1", "given")
    env.setenv("HOSTNAME", "psmq-worker-4")
    assert psmq.config()["rank"] == ("4", "HOSTNAME")


def test_a_bad_variable_is_named(env):
    env.setenv("PSMQ_WORKERS", "3")
    env.setenv("PSMQ_RANK", "7")
    with pytest.raises(psmq.InvalidArgument) as error:
        psmq.config()
    assert "rank 7 (PSMQ_RANK='7')" in str(error.value)
    assert "world of 3 (PSMQ_WORKERS='3')" in str(error.value)
    env.setenv("PSMQ_RANK", "x")
    with pytest.raises(psmq.InvalidArgument, match="PSMQ_RANK='x' is not a rank"):
        psmq.Worker("tcp://127.0.0.1:9")


def test_workers_without_ranks_are_given_them_by_the_broker(env, broker):
    b = broker("--workers", 2)
    env.setenv("PSMQ_BROKER", b.endpoint)
    with psmq.Worker(timeout_ms=TIMEOUT_MS) as first, \
            psmq.Worker(timeout_ms=TIMEOUT_MS) as second:
        assert (first.rank, first.world_size) == (0, 2)
        assert (second.rank, second.world_size) == (1, 2)
        #  A third finds the job full
        with pytest.raises(psmq.RankError, match="the job is full"):
            psmq.Worker(timeout_ms=TIMEOUT_MS)
    #  The rank from the environment, the world from the broker
    env.setenv("PSMQ_RANK", "1")
    with psmq.Worker(timeout_ms=TIMEOUT_MS) as worker:
        assert (worker.rank, worker.world_size) == (1, 2)

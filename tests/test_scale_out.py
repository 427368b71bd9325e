"""Scale-out proofs that need no cloud: the whole build as one pipeline, translated for
Dataflow offline, run on the PortableRunner against a job service on 127.0.0.1, and the
local build on multi_processing giving the shards in_memory gives; bad runner options are
one line before anything is written or submitted.

Everything runs on the embedded sample dumps and the sample web (offline replay).
"""

from __future__ import annotations

import importlib.util
import os
import socket
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from beam_jobs.files import InputError
from beam_jobs.options import check_remote_paths, pipeline_options

ROOT = Path(__file__).resolve().parents[1]
WEBTEXT = [sys.executable, "-m", "webtext_pipeline.cli"]
STAGE_FOLDERS = ("links", "fetched", "clean", "dedup", "docs")


def webtext(*args: str, timeout: int = 240) -> subprocess.CompletedProcess:
    return subprocess.run([*WEBTEXT, *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout)


def plan_for(out: Path, *flags: str):
    from webtext_pipeline.cli import build_parser
    from webtext_pipeline.cli_stages import build_plan

    argv = ["build", "--out", str(out), "--until", "shards", *flags]
    args, beam_flags = build_parser().parse_known_args(argv)
    return build_plan(args, beam_flags, argv)


def stage_files(out: Path) -> dict[str, object]:
    """Every stage folder's Parquet bytes, and each stage's reject rows with the build folder
    taken out of their keys (links rejects name the dump file, under OUT/sample, so the
    shard a reject row hashes to depends on the folder: compare the rows, not the files)."""
    files: dict[str, object] = {}
    for folder in STAGE_FOLDERS:
        for path in sorted((out / folder).glob("*.parquet")):
            files[f"{folder}/{path.name}"] = path.read_bytes()
    for path in sorted((out / "rejects").glob("*.parquet")):
        rows = files.setdefault(f"rejects/{path.name.split('-part-')[0]}", [])
        for row in pq.read_table(path).to_pylist():
            rows.append(tuple(str(v).replace(str(out), "OUT") for v in row.values()))
    for name, rows in files.items():
        if name.startswith("rejects/"):
            rows.sort()
    return files


@pytest.fixture(scope="module")
def in_memory(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("scale") / "in-memory"
    run = webtext("build", "--until", "shards", "--out", str(out), "--runner", "DirectRunner")
    assert run.returncode == 0, run.stderr[-2000:]
    return out


# -- Dataflow, translated offline ------------------------------------------------------------


@pytest.fixture
def no_network(monkeypatch):
    """Any DNS look-up or connection to a non-loopback address fails the test."""
    real_connect = socket.socket.connect

    def connect(sock, address):
        host = address[0] if isinstance(address, tuple) else address
        if isinstance(host, str) and host not in ("127.0.0.1", "::1", "localhost"):
            raise AssertionError(f"network access to {address}")
        return real_connect(sock, address)

    def getaddrinfo(host, *args, **kwargs):
        raise AssertionError(f"DNS look-up of {host}")

    monkeypatch.setattr(socket.socket, "connect", connect)
    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)


@pytest.mark.skipif(importlib.util.find_spec("apitools") is None,
                    reason="the Dataflow runner needs apache-beam[gcp]")
def test_dataflow_dry_run_translates_the_whole_build(tmp_path, no_network):
    from beam_jobs.full_pipeline import run_remote_build

    plan = plan_for(tmp_path / "out", "--runner", "DataflowRunner", "--project", "webtext-test",
                    "--region", "us-central1", "--temp_location", "gs://webtext-test/tmp",
                    "--dry_run=True", "--no_auth")
    lines: list[str] = []
    report = run_remote_build(plan, log=lines.append)
    assert report["dry_run"] is True
    steps = report["steps"]
    for step in ("DumpFiles", "Links", "WriteLinks", "WriteLinksRejects", "Fetch", "WriteFetched",
                 "WriteFetchRejects", "Extract", "WriteClean", "WriteExtractRejects", "Dedup",
                 "WriteDedup", "WriteDedupRejects", "Shards", "WriteDocs"):
        assert step in steps, (step, steps)
    assert report["transforms"] > 100
    assert any("translated; nothing ran" in line for line in lines)
    for folder in STAGE_FOLDERS:  # a dry run writes no stage output
        assert not list((tmp_path / "out" / folder).glob("*.parquet"))


# -- PortableRunner against the local job service on 127.0.0.1 -------------------------------


@pytest.fixture
def job_service(monkeypatch):
    """Beam's Python job service in this process, every gRPC server bound to 127.0.0.1."""
    from apache_beam.runners.portability.local_job_service import LocalJobServicer
    from grpc._server import _Server

    binds: list[str] = []
    real_add = _Server.add_insecure_port

    def add_insecure_port(server, address: str) -> int:
        host, _, port = address.rpartition(":")
        if host in ("[::]", "0.0.0.0", "localhost", ""):  # Beam's defaults: every interface
            address = f"127.0.0.1:{port}"
        binds.append(address)
        return real_add(server, address)

    monkeypatch.setattr(_Server, "add_insecure_port", add_insecure_port)

    class Loopback(LocalJobServicer):
        def get_service_address(self) -> str:
            return "127.0.0.1"

    service = Loopback()
    port = service.start_grpc_server(0)
    yield f"127.0.0.1:{port}", binds
    service.stop()


def test_portable_runner_builds_the_same_corpus(tmp_path, in_memory, job_service):
    from beam_jobs.full_pipeline import run_remote_build

    endpoint, binds = job_service
    out = tmp_path / "portable"
    plan = plan_for(out, "--runner", "PortableRunner", f"--job_endpoint={endpoint}",
                    "--environment_type=LOOPBACK")
    report = run_remote_build(plan, log=lambda line: None)
    assert binds and all(address.startswith("127.0.0.1:") for address in binds), binds
    funnel = {entry["stage"]: entry for entry in report["funnel"]}
    assert funnel["shards"]["out"] == funnel["dedup"]["out"] > 0
    # One pipeline, same files as the stage-by-stage local build (the layout matches on
    # the sample: one shard per folder).
    assert stage_files(out) == stage_files(in_memory)


# -- multi_processing = in_memory -------------------------------------------------------------


def test_multi_processing_gives_the_in_memory_shards(tmp_path, in_memory):
    out = tmp_path / "multi"
    run = webtext("build", "--until", "shards", "--out", str(out), "--runner", "DirectRunner",
                  "--direct_running_mode=multi_processing", "--direct_num_workers=2")
    assert run.returncode == 0, run.stderr[-2000:]
    docs = stage_files(out)
    assert any(name.startswith("docs/shard-") for name in docs)
    assert docs == stage_files(in_memory)


# -- runner options that cannot work ----------------------------------------------------------


@pytest.mark.parametrize(
    ("flags", "needle"),
    [
        (["--runner", "DataflowRunner", "--project", "webtext-test", "--region", "r"],
         "needs --temp_location"),
        (["--runner", "DataflowRunner", "--project", "webtext-test", "--region", "r",
          "--temp_location", "/tmp/x"], "gs://"),
        (["--runner", "DataflowRunner", "--region", "r", "--temp_location", "gs://webtext-b/t"],
         "needs --project"),
        (["--runner", "DataflowRunner", "--project", "p", "--region", "r",
          "--temp_location", "gs://webtext-b/t"], "not a project ID"),
        (["--runner", "DataflowRunner", "--project", "webtext-test", "--region", "r",
          "--temp_location", "gs://b/t"], "not a valid bucket name"),
        (["--runner", "DataflowRunner", "--project", "webtext-test",
          "--temp_location", "gs://webtext-b/t"], "needs --region"),
        (["--direct_running_mode=multi_threading"], "multi_threading"),
        (["--runner", "PortableRunner"], "needs --job_endpoint"),
        (["--runner", "PortableRunner", "--job_endpoint", "127.0.0.1:1",
          "--temp_location", "/tmp/x"], "cannot see a local path"),
    ],
)
def test_bad_runner_options_are_one_line(tmp_path, capsys, flags, needle):
    from webtext_pipeline.cli import main

    out = tmp_path / "out"
    code = main(["build", "--out", str(out), *flags])
    err = capsys.readouterr().err.strip()
    assert code != 0
    assert needle in err and len(err.splitlines()) == 1, err
    assert not out.exists()  # nothing written, nothing submitted


def test_remote_workers_need_shared_paths():
    dataflow = ["--runner", "DataflowRunner", "--project", "webtext-test", "--region", "r",
                "--temp_location", "gs://webtext-b/t"]
    if importlib.util.find_spec("apitools") is None:
        pytest.skip("the Dataflow runner needs apache-beam[gcp]")
    options = pipeline_options(dataflow)
    with pytest.raises(InputError, match="--out out: DataflowRunner workers cannot write"):
        check_remote_paths(options, "out", ["gs://webtext-b/RS_2017-01.zst"])
    with pytest.raises(InputError, match="copy the dumps to gs://"):
        check_remote_paths(options, "gs://webtext-b/out", ["/data/RS_2017-01.zst"])
    check_remote_paths(options, "gs://webtext-b/out", ["gs://webtext-b/RS_2017-01.zst"])
    dry = pipeline_options([*dataflow, "--dry_run=True"])
    check_remote_paths(dry, "out", ["/data/RS_2017-01.zst"])  # a dry run only translates
    loopback = pipeline_options(["--runner", "PortableRunner", "--job_endpoint=embed",
                                 "--environment_type=LOOPBACK"])
    check_remote_paths(loopback, "out", [os.path.join("data", "RS_2017-01.zst")])


def test_layout_comes_from_the_dump_bytes_alone():
    from beam_jobs.full_pipeline import estimate_layout

    tiny = estimate_layout(185_704, 256 << 20)  # the embedded sample: one shard everywhere
    assert (tiny.fetched_shards, tiny.clean_shards, tiny.dedup_shards, tiny.docs_shards) == (
        1, 1, 1, 1)
    full = estimate_layout(100 * 10**9, 256 << 20)  # ~all of Reddit to 2017-12
    assert full.fetch_buckets == 4096 and full.est_links >= 45_000_000
    assert full.est_links / full.fetched_shards <= 2_000  # ≤ 256 MiB of HTML per shard
    assert full.est_clean / full.dedup_shards <= 50_000
    double = estimate_layout(200 * 10**9, 256 << 20)
    assert double.docs_shards >= 2 * full.docs_shards - 1


@pytest.mark.skipif(importlib.util.find_spec("apitools") is None,
                    reason="the Dataflow runner needs apache-beam[gcp]")
def test_webtext_build_dry_run_for_dataflow_from_the_command_line(tmp_path, no_network, capsys):
    from webtext_pipeline.cli import main

    out = tmp_path / "out"
    code = main(["build", "--out", str(out), "--runner", "DataflowRunner", "--project",
                 "webtext-test", "--region", "us-central1", "--temp_location",
                 "gs://webtext-test/tmp", "--dry_run=True", "--no_auth"])
    printed = capsys.readouterr().out
    assert code == 0, printed
    assert "translated for the runner; nothing was submitted" in printed
    for folder in STAGE_FOLDERS:
        assert not list((out / folder).glob("*.parquet"))

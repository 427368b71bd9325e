"""No rows lost between the local runner and its worker processes.

Beam 2.77's local runner flushes each bundle's input to a worker from a
periodic thread that races the writing thread (see beam_jobs/new_pipeline.py);
big multi_processing runs lost rows at our shard writers' Flatten. Here the
flush period is first shrunk to 1 ms, so a ~60 MB run opens the same window a
~1 GB run opens at Beam's default of one second, and every row must still
reach the shards because `new_pipeline` turns the timed flushing off.

The row generators are module-level functions: Beam's worker processes import
this module to run them (PYTHONPATH carries the tests folder to them).
"""

from __future__ import annotations

import os
import zlib
from pathlib import Path

import apache_beam as beam
import pyarrow as pa
import pyarrow.dataset as ds
from apache_beam.options.pipeline_options import PipelineOptions
from apache_beam.runners.portability.fn_api_runner import worker_handlers
from apache_beam.runners.worker import data_plane

from beam_jobs.new_pipeline import disable_time_based_flushing, new_pipeline
from beam_jobs.sharded_parquet import WriteSortedShards

HERE = Path(__file__).resolve().parent
ROWS = 12_000
ROWS_PER_SEED = 1_000
PAYLOAD_BYTES = 5_000  # ~60 MB in all: several 10 MB data-plane chunks per worker
SCHEMA = pa.schema([("url", pa.string()), ("html", pa.string())])
MULTI = ["--runner=DirectRunner", "--direct_running_mode=multi_processing",
         "--direct_num_workers=2"]


def page_rows(seed: int):
    for i in range(seed, min(seed + ROWS_PER_SEED, ROWS)):
        html = f"<p>{i}</p>".ljust(PAYLOAD_BYTES)
        yield {"url": f"http://site{i % 97}.example/{i}", "html": html}


def by_host(row: dict) -> tuple[int, dict]:
    return zlib.crc32(row["url"].split("/")[2].encode()) % 16, row


def ungroup(element: tuple[int, list[dict]]):
    yield from element[1]


def url_key(row: dict) -> tuple:
    return (row["url"],)


def test_time_based_flushing_is_off_for_every_local_stream():
    worker_handlers.DATA_BUFFER_TIME_LIMIT_MS = 1000  # Beam's default
    new_pipeline(PipelineOptions([]))
    servicer = data_plane.BeamFnDataServicer(worker_handlers.DATA_BUFFER_TIME_LIMIT_MS)
    stream = servicer.get_conn_by_worker_id("worker_0").output_stream("bundle_1", "read")
    assert not isinstance(stream, data_plane.TimeBasedBufferingClosableOutputStream)


def test_a_large_flatten_on_multi_processing_loses_no_rows(tmp_path, monkeypatch):
    path = os.environ.get("PYTHONPATH", "")
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(p for p in (str(HERE), path) if p))
    worker_handlers.DATA_BUFFER_TIME_LIMIT_MS = 1  # widen Beam's race to a small run
    try:
        pipeline = new_pipeline(PipelineOptions(MULTI))
        rows = (
            pipeline
            | beam.Create(list(range(0, ROWS, ROWS_PER_SEED)))
            | beam.FlatMap(page_rows)
            | beam.Map(by_host)
            | beam.GroupByKey()
            | beam.FlatMap(ungroup)
        )
        _ = rows | WriteSortedShards(str(tmp_path), "part", SCHEMA, 4, url_key)
        pipeline.run().wait_until_finish()
    finally:
        disable_time_based_flushing()
    urls = ds.dataset(str(tmp_path), format="parquet").to_table(columns=["url"]).column("url")
    assert len(urls) == ROWS
    assert len(set(urls.to_pylist())) == ROWS

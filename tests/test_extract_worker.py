"""The killable worker process: time limit, crashes, memory cap, threads.

The slow/crashing "extractors" are module-level functions of this file: the
worker pickles its core function by reference and the spawned child imports
this module to run it, exactly as it imports the real one.
"""

from __future__ import annotations

import dataclasses
import os
import sys
import threading
import time

import pytest

from webtext_pipeline.extract import (
    DEFAULT_CONFIG,
    Extraction,
    ExtractWorker,
    extract_page,
    extract_record,
    thread_worker,
)
from webtext_pipeline.extract.worker import ERROR, OK, TIMEOUT
from webtext_pipeline.records import Reject

FAST = dataclasses.replace(DEFAULT_CONFIG, timeout_s=0.5)


def slow_core(html, url, config, max_date):
    if html.startswith("slow"):
        time.sleep(60)
    return Extraction(text=f"fast {html}", extractor="trafilatura")


def failing_core(html, url, config, max_date):
    if html == "raise":
        raise ValueError("bad page")
    if html == "memory":
        raise MemoryError()
    if html == "die":
        os._exit(3)
    if html == "hog":
        hog = bytearray(8 << 30)  # 8 GiB: over the worker's address-space cap
        return Extraction(text=str(len(hog)))
    return Extraction(text=f"ok {html}", extractor="trafilatura")


def page(words: int = 300) -> str:
    body = " ".join(f"word{i % 50}" for i in range(words))
    return f"<html><body><article><p>The river and the bridge. {body}.</p></article></body></html>"


@pytest.fixture(scope="module")
def slow_worker():
    with ExtractWorker(FAST, core=slow_core) as worker:
        yield worker


@pytest.fixture(scope="module")
def failing_worker():
    cfg = dataclasses.replace(FAST, memory_headroom_mb=512)
    with ExtractWorker(cfg, core=failing_core) as worker:
        yield worker


def test_a_slow_page_times_out_and_the_worker_recovers(slow_worker):
    assert slow_worker.run("quick", None) == (
        OK,
        Extraction(text="fast quick", extractor="trafilatura"),
    )
    first_pid = slow_worker.pid
    started = time.monotonic()
    status, detail = slow_worker.run("slow page", None)
    assert status == TIMEOUT and "0.5 s" in detail
    assert time.monotonic() - started < 3
    assert slow_worker.pid is None  # killed
    status, result = slow_worker.run("next", None)
    assert status == OK and result.text == "fast next"
    assert slow_worker.pid not in (None, first_pid)
    assert slow_worker.kills >= 1


def test_extract_record_turns_a_timeout_into_a_reject(slow_worker):
    row = {
        "url": "https://example.com/slow",
        "final_url": "https://example.com/slow",
        "html": "slow",
    }
    result = extract_record(row, FAST, worker=slow_worker)
    assert isinstance(result, Reject)
    assert (result.stage, result.key, result.reason) == (
        "extract",
        "https://example.com/slow",
        "extract_timeout",
    )


@pytest.mark.parametrize(
    ("html", "detail"),
    [
        ("raise", "ValueError: bad page"),
        ("memory", "MemoryError"),
        ("die", "worker process died (exit code 3)"),
        pytest.param(
            "hog",
            "MemoryError",
            marks=pytest.mark.skipif(sys.platform != "linux", reason="RLIMIT_AS is Linux's"),
        ),
    ],
)
def test_crashes_become_extract_errors(failing_worker, html, detail):
    status, message = failing_worker.run(html, None)
    assert status == ERROR and message.startswith(detail)
    row = {"url": "https://example.com/x", "final_url": "https://example.com/x", "html": html}
    result = extract_record(row, FAST, worker=failing_worker)
    assert isinstance(result, Reject) and result.reason == "extract_error"
    # and the next page is served
    assert failing_worker.run("fine", None)[0] == OK


def test_the_real_extraction_in_the_worker_equals_the_in_process_one():
    html = page()
    with ExtractWorker(DEFAULT_CONFIG) as worker:
        status, result = worker.run(html, "https://example.com/a", "2020-01-01")
    assert status == OK
    assert result == extract_page(html, "https://example.com/a", DEFAULT_CONFIG, "2020-01-01")


def test_each_thread_gets_its_own_worker_and_the_same_answers():
    pages = [page(200 + 37 * i) for i in range(6)]
    expected = [extract_page(h, None, DEFAULT_CONFIG, "2020-01-01").text for h in pages]
    results: dict[int, list[str]] = {}
    pids: dict[int, int] = {}

    def work(n):
        worker = thread_worker()
        out = []
        for h in pages:
            status, result = worker.run(h, None, "2020-01-01")
            assert status == OK
            out.append(result.text)
        results[n], pids[n] = out, worker.pid

    threads = [threading.Thread(target=work, args=(n,)) for n in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results[0] == results[1] == expected
    assert pids[0] != pids[1]

"""Shared fixtures: the embedded sample dumps, generated once per test session."""

from __future__ import annotations

import pytest

from webtext_pipeline.links.sample import write_sample_dumps


@pytest.fixture(scope="session")
def sample_dumps(tmp_path_factory):
    """The embedded sample months (one of them truncated), as a directory."""
    directory = tmp_path_factory.mktemp("sample-dumps")
    write_sample_dumps(directory)
    return directory

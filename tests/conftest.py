import os, sys, tempfile
import pytest
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

@pytest.fixture(scope='session')
def cache_dir(tmp_path_factory):
    "A model cache shared by the tests of one session (never the user's ~/.cache/rurk)."
    return tmp_path_factory.mktemp('rurk-cache')

@pytest.fixture(autouse=True)
def _isolated_cache(monkeypatch, cache_dir):
    monkeypatch.setenv('RURK_CACHE', str(cache_dir))

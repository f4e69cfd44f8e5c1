"""Shared fixtures. Real sample data lives in ``../shared`` beside the repository and is never copied in."""

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
REAL_DATA = SHARED / "data" / "real"


@pytest.fixture(scope="session")
def real_data_dir() -> Path:
    """``../shared/data/real`` (read-only); tests using it skip when it is absent."""
    if not (REAL_DATA / "README.md").is_file():
        pytest.skip(f"real BraTS sample cases not found at {REAL_DATA} (../shared is absent)")
    return REAL_DATA

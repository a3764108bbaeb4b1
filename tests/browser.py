"""What every browser test shares: Debian's Chromium (never a downloaded browser), driven
by Playwright; a clear skip without it, or a failure where skipping is forbidden (CI)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import REQUIRE_ALL

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
WAIT_MS = 5_000


def require_chromium() -> Any:
    """The ``playwright.sync_api`` module, or skip (fail in CI) the calling test module."""
    if not CHROMIUM.exists():
        if REQUIRE_ALL:
            raise RuntimeError(
                f"browser tests need Chromium at {CHROMIUM} (apt-get install "
                f"chromium); WARDWATCH_TEST_REQUIRE_ALL=1 forbids skipping them"
            )
        pytest.skip(
            f"browser tests need Chromium at {CHROMIUM} (apt-get install chromium)",
            allow_module_level=True,
        )
    return pytest.importorskip("playwright.sync_api")


def launch(playwright_sync: Any) -> Iterator[Any]:
    """A headless Chromium for a module's tests (use from a module-scoped fixture)."""
    with playwright_sync.sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        try:
            yield b
        finally:
            b.close()

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


def checked_page(browser: Any, **context: Any) -> Iterator[Any]:
    """A page in a fresh context (its own storage) that fails the test on any JavaScript
    error. Use from a function-scoped fixture: ``yield from checked_page(browser, ...)``."""
    ctx = browser.new_context(**context)
    pg = ctx.new_page()
    errors: list[str] = []
    pg.on("pageerror", lambda exc: errors.append(str(exc)))
    try:
        yield pg
    finally:
        ctx.close()  # closes the page's event stream before the server stops
    assert not errors, f"JavaScript errors on the page: {errors}"


def open_live(page: Any, url: str, expect: Any, filled: str) -> None:
    """Open ``url`` and wait until it is live and ``filled`` (a selector) shows data."""
    page.goto(url)
    expect(page.locator("#live-status")).to_have_text("Live", timeout=WAIT_MS)
    expect(page.locator(filled)).not_to_be_empty(timeout=WAIT_MS)
    # One fetch on load and one when the stream opens (throttled, up to a second later):
    # let them settle, so later changes can reach the page only through the stream.
    page.wait_for_timeout(1_500)

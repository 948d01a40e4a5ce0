"""Today's cost and the daily budget, kept across restarts.

Wraps the pure ``CostLedger`` with what the daemon needs around it: loading and
saving ``<state_dir>/usage.json`` (atomically, off the event loop, newest state
wins), noticing a new day, and telling the daemon when the budget pauses or
resumes listening. The date is the only clock, and it comes from ``today``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import date

from device.config import Config
from device.cost import CostLedger
from device.realtime.events import Usage
from device.statefile import JsonSaver, read_json, remove_stale_temp_files

log = logging.getLogger(__name__)

DAY_CHECK_S = 60.0


def today_iso() -> str:
    return date.today().isoformat()


class UsageKeeper:
    """Counts cost per turn, saves it, and pauses listening when the budget is spent."""

    def __init__(
        self,
        config: Config,
        *,
        today: Callable[[], str] = today_iso,
        on_pause_change: Callable[[bool], None] = lambda paused: None,
    ) -> None:
        self._config = config
        self._today = today
        self._on_pause_change = on_pause_change
        self.path = config.device.state_dir / "usage.json"
        self.ledger = CostLedger(today(), config.cost)
        self.paused = False
        self._saver = JsonSaver(self.path, "today's cost is still counted in memory")

    async def load(self) -> None:
        """Read the saved totals; a missing or broken file starts today from zero."""
        remove_stale_temp_files(self.path)
        data, problem = await asyncio.to_thread(read_json, self.path)
        if problem:
            log.warning("usage file %s %s; counting today's cost from zero", self.path, problem)
        self.ledger, problem = CostLedger.from_json(data, self._today(), self._config.cost)
        if problem:
            log.warning("usage file %s: %s", self.path, problem)
        self._update_pause()

    def configure(self, config: Config) -> None:
        self._config = config
        self.ledger.configure(config.cost)
        self._update_pause()

    def account(self, usage: Usage) -> None:
        """One response's usage: count it, log it, save it, maybe pause."""
        cost = self.ledger.record(usage, self._config.realtime.model, self._today())
        log.info("%s", self.ledger.describe(cost))
        self._save()
        self._update_pause()

    def check_day(self) -> None:
        """Start a new day's totals when the date changed (and resume listening)."""
        if self.ledger.roll_over(self._today()):
            self._save()
        self._update_pause()

    async def day_loop(self) -> None:
        while True:
            await asyncio.sleep(DAY_CHECK_S)
            self.check_day()

    @property
    def save_failures(self) -> int:
        return self._saver.failures

    async def flush(self) -> None:
        """Wait for the last save (at shutdown)."""
        await self._saver.flush()

    def _update_pause(self) -> None:
        if self.ledger.take_budget_notice():
            cost = self._config.cost
            log.warning(
                "today's budget is spent (%.2f %s): not listening until tomorrow",
                cost.daily_budget_usd,
                cost.currency,
            )
        paused = self.ledger.budget_spent
        if paused != self.paused:
            self.paused = paused
            if not paused:
                log.info("the daily budget is available again; listening")
            self._on_pause_change(paused)

    def _save(self) -> None:
        self._saver.save(self.ledger.to_json())  # the snapshot is taken on the loop thread

"""What each response of the Realtime API costs, and today's running total.

Pure: no clock, no files. The caller passes the local day as an ISO date
("2025-08-28") and stores ``CostLedger.to_json()`` wherever it keeps state.

The bill of one response, from the usage in ``response.done`` (prices per 1M tokens;
the cached counts are a subset of the input counts)::

    (text_in - cached_text) * text_in_price + cached_text * text_cached_price
  + (audio_in - cached_audio) * audio_in_price + cached_audio * audio_cached_price
  + (image_in - cached_image) * image_in_price + cached_image * image_cached_price
  + text_out * text_out_price + audio_out * audio_out_price
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field, fields, replace
from datetime import date
from typing import Any, Protocol

from device.frozen import FrozenTable
from device.realtime.events import Usage

TOKENS_PER_MTOK = 1_000_000
USAGE_FORMAT = "edgevoice-usage"
USAGE_VERSION = 1
_BUDGET_SLACK_USD = 1e-9  # float sums of many turns must not miss the budget by a hair
MAX_CLOCK_LAG_DAYS = 1
"""A day at most this much earlier than the one being counted is a clock running behind."""

# How a response is billed, in the order of the formula; each name is a field of
# Tokens (a count) and of TurnCost (an amount), and names a Prices field with "_per_mtok".
MODALITIES = (
    "text_in", "text_cached", "audio_in", "audio_cached",
    "image_in", "image_cached", "text_out", "audio_out",
)  # fmt: skip
_LABELS = {
    m: f"cached {m.removesuffix('_cached')}" if m.endswith("_cached") else m.replace("_", " ")
    for m in MODALITIES
}
_SYMBOLS = {"USD": "$"}


@dataclass(frozen=True, slots=True)
class Prices:
    """What one model charges, per 1M tokens of each kind."""

    text_in_per_mtok: float
    text_cached_per_mtok: float
    audio_in_per_mtok: float
    audio_cached_per_mtok: float
    image_in_per_mtok: float
    image_cached_per_mtok: float
    text_out_per_mtok: float
    audio_out_per_mtok: float


PRICE_KEYS = tuple(f.name for f in fields(Prices))


class PriceTable(FrozenTable[Prices]):
    """Model name -> Prices; immutable and hashable, so a frozen config can hold it."""

    def as_dict(self) -> dict[str, dict[str, float]]:
        """TOML-shaped: {model: {"text_in_per_mtok": 4.0, ...}}."""
        return {
            model: {key: getattr(prices, key) for key in PRICE_KEYS}
            for model, prices in self._entries.items()
        }


_GPT_REALTIME = Prices(
    text_in_per_mtok=4.00, text_cached_per_mtok=0.40,
    audio_in_per_mtok=32.00, audio_cached_per_mtok=0.40,
    image_in_per_mtok=5.00, image_cached_per_mtok=0.50,
    text_out_per_mtok=16.00, audio_out_per_mtok=64.00,
)  # fmt: skip
DEFAULT_PRICES = PriceTable({
    "gpt-realtime": _GPT_REALTIME,
    "gpt-realtime-2025-08-28": _GPT_REALTIME,
    "gpt-realtime-1.5": _GPT_REALTIME,
    "gpt-realtime-2": replace(_GPT_REALTIME, text_out_per_mtok=24.00),
})  # fmt: skip
"""USD per 1M tokens, from the model pages; the [cost.prices] config overrides them."""

_FREE = Prices(0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0)


def family_of(model: str, names: Iterable[str]) -> str | None:
    """The longest of ``names`` that ``model`` is, or extends with a "-" suffix.

    "gpt-realtime-1.5-2026-01-15" belongs to "gpt-realtime-1.5"; "gpt-realtime-2025-12-01"
    to "gpt-realtime" (not "gpt-realtime-2": a family ends where a "-" begins).
    """
    matches = [name for name in names if model == name or model.startswith(name + "-")]
    return max(matches, key=len, default=None)


def price_for(model: str, table: Mapping[str, Prices]) -> Prices | None:
    """The model's prices, else its family's (see ``family_of``), else None."""
    family = family_of(model, table)
    return None if family is None else table[family]


@dataclass(frozen=True, slots=True)
class Tokens:
    """Token counts of one response, split the way they are billed.

    ``text_in``, ``audio_in`` and ``image_in`` count only the uncached input.
    """

    text_in: int = 0
    text_cached: int = 0
    audio_in: int = 0
    audio_cached: int = 0
    image_in: int = 0
    image_cached: int = 0
    text_out: int = 0
    audio_out: int = 0

    @classmethod
    def from_usage(cls, usage: Usage) -> Tokens:
        """Split ``usage``; a cached count larger than its input never makes one negative."""
        cached_text = max(0, usage.cached_text_tokens)
        cached_audio = max(0, usage.cached_audio_tokens)
        cached_image = max(0, usage.cached_image_tokens)
        return cls(
            text_in=max(0, usage.input_text_tokens - cached_text),
            text_cached=cached_text,
            audio_in=max(0, usage.input_audio_tokens - cached_audio),
            audio_cached=cached_audio,
            image_in=max(0, usage.input_image_tokens - cached_image),
            image_cached=cached_image,
            text_out=max(0, usage.output_text_tokens),
            audio_out=max(0, usage.output_audio_tokens),
        )

    @property
    def input(self) -> int:
        return (self.text_in + self.text_cached + self.audio_in + self.audio_cached
                + self.image_in + self.image_cached)  # fmt: skip

    @property
    def output(self) -> int:
        return self.text_out + self.audio_out


@dataclass(frozen=True, slots=True)
class TurnCost:
    """What one response cost, in the prices' currency (USD by default), by kind of token."""

    text_in: float = 0.0
    text_cached: float = 0.0
    audio_in: float = 0.0
    audio_cached: float = 0.0
    image_in: float = 0.0
    image_cached: float = 0.0
    text_out: float = 0.0
    audio_out: float = 0.0
    tokens: Tokens = Tokens()
    priced: bool = True
    """False when the model had no price: every amount is then 0, the tokens still count."""
    model: str = ""

    @property
    def total(self) -> float:
        return sum(self.parts().values())

    def parts(self) -> dict[str, float]:
        """Amount per kind of token, in the order of ``MODALITIES``."""
        return {modality: float(getattr(self, modality)) for modality in MODALITIES}


def turn_cost(usage: Usage, prices: Prices) -> TurnCost:
    """The cost of one response from its ``response.done`` usage."""
    n, p = Tokens.from_usage(usage), prices
    return TurnCost(
        text_in=_cost(n.text_in, p.text_in_per_mtok),
        text_cached=_cost(n.text_cached, p.text_cached_per_mtok),
        audio_in=_cost(n.audio_in, p.audio_in_per_mtok),
        audio_cached=_cost(n.audio_cached, p.audio_cached_per_mtok),
        image_in=_cost(n.image_in, p.image_in_per_mtok),
        image_cached=_cost(n.image_cached, p.image_cached_per_mtok),
        text_out=_cost(n.text_out, p.text_out_per_mtok),
        audio_out=_cost(n.audio_out, p.audio_out_per_mtok),
        tokens=n,
    )


def _cost(tokens: int, per_mtok: float) -> float:
    return tokens * per_mtok / TOKENS_PER_MTOK


@dataclass
class DailyTotals:
    """One local day's responses: what they cost and how many tokens they used."""

    day: str
    cost_usd: float = 0.0
    input_tokens: int = 0
    output_tokens: int = 0
    responses: int = 0
    unpriced_responses: int = 0
    by_modality: dict[str, float] = field(default_factory=lambda: dict.fromkeys(MODALITIES, 0.0))

    def add(self, turn: TurnCost) -> None:
        self.cost_usd += turn.total
        self.input_tokens += turn.tokens.input
        self.output_tokens += turn.tokens.output
        self.responses += 1
        self.unpriced_responses += 0 if turn.priced else 1
        for modality, amount in turn.parts().items():
            self.by_modality[modality] = self.by_modality.get(modality, 0.0) + amount


def check_day(day: Any) -> str:
    """Return ``day`` if it is an ISO date "YYYY-MM-DD"; raise ValueError otherwise."""
    with contextlib.suppress(TypeError, ValueError):
        if date.fromisoformat(day).isoformat() == day:
            return str(day)
    raise ValueError(f"day {day!r} is not an ISO date (YYYY-MM-DD)")


def _clock_behind(day: str, counted_day: str) -> bool:
    """True if ``day`` is up to ``MAX_CLOCK_LAG_DAYS`` before ``counted_day``.

    A Pi has no real-time clock: after a restart, until its time is synchronised, it may
    read a time shortly before the last one it saw. Counting on into the later day keeps
    a restart from resetting a spent budget; a much earlier day is taken as the real one,
    so a wrong date far ahead cannot hold the budget spent for long.
    """
    lag_days = (date.fromisoformat(counted_day) - date.fromisoformat(day)).days
    return 0 < lag_days <= MAX_CLOCK_LAG_DAYS


class CostSettings(Protocol):
    """What the ledger is configured with; ``device.config.CostConfig`` is one."""

    @property
    def prices(self) -> Mapping[str, Prices]: ...
    @property
    def daily_budget_usd(self) -> float: ...  # 0: no budget
    @property
    def currency(self) -> str: ...


class CostLedger:
    """Today's totals against a daily budget."""

    def __init__(self, day: str, settings: CostSettings) -> None:
        self.today = DailyTotals(check_day(day))
        self.settings = settings
        self._budget_told = False

    def configure(self, settings: CostSettings) -> None:
        """Take new settings (a reloaded config) and keep today's totals."""
        self.settings = settings
        if not self.budget_spent:
            self._budget_told = False

    def roll_over(self, day: str) -> bool:
        """Start a fresh total if ``day`` is another day; True if it did.

        A day slightly earlier than the one counted is a clock running behind and
        changes nothing (see ``_clock_behind``).
        """
        if check_day(day) == self.today.day or _clock_behind(day, self.today.day):
            return False
        self.today = DailyTotals(day)
        self._budget_told = False
        return True

    def record(self, usage: Usage, model: str, day: str) -> TurnCost:
        """Add one response's usage to ``day``'s total (a later day starts afresh)."""
        self.roll_over(day)
        prices = price_for(model, self.settings.prices)
        cost = turn_cost(usage, prices or _FREE)
        cost = replace(cost, model=model, priced=prices is not None)
        self.today.add(cost)
        return cost

    @property
    def budget_spent(self) -> bool:
        """True once today's responses cost the whole budget (never without a budget)."""
        budget = self.settings.daily_budget_usd
        return budget > 0 and self.today.cost_usd >= budget - _BUDGET_SLACK_USD

    @property
    def remaining_usd(self) -> float | None:
        """What today's budget still allows; None without a budget."""
        budget = self.settings.daily_budget_usd
        return None if budget <= 0 else max(0.0, budget - self.today.cost_usd)

    def take_budget_notice(self) -> bool:
        """True exactly once a day: the first time it is asked after the budget is spent."""
        if not self.budget_spent or self._budget_told:
            return False
        self._budget_told = True
        return True

    def describe(self, cost: TurnCost) -> str:
        """``describe_turn`` with today's total and budget."""
        budget, currency = self.settings.daily_budget_usd, self.settings.currency
        return describe_turn(cost, today_usd=self.today.cost_usd, budget_usd=budget,
                             currency=currency)  # fmt: skip

    def to_json(self) -> dict[str, Any]:
        """Today's totals as plain JSON values (a fresh dict each call)."""
        currency = self.settings.currency
        head = {"format": USAGE_FORMAT, "version": USAGE_VERSION, "currency": currency}
        return {**head, **asdict(self.today)}

    @classmethod
    def from_json(
        cls, data: Any, day: str, settings: CostSettings
    ) -> tuple[CostLedger, str | None]:
        """A ledger for ``day`` that continues the saved totals when they are ``day``'s.

        ``data`` is what ``to_json`` wrote, or None when nothing was saved. Returns the
        ledger and, when the data could not be used, why (the count then starts at 0).
        Saved totals of another day are left behind, unless the clock seems to run
        behind them (see ``_clock_behind``): the ledger then goes on counting them.
        """
        ledger = cls(day, settings)
        if data is None:
            return ledger, None
        try:
            saved = _totals_from_json(data)
        except ValueError as problem:
            return ledger, f"{problem}; counting today from zero"
        if saved.day == day or _clock_behind(day, saved.day):
            ledger.today = saved
        return ledger, None


_COUNTS = ("input_tokens", "output_tokens", "responses", "unpriced_responses")


def _count(data: Mapping[str, Any], key: str) -> int:
    value = data.get(key, 0)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{key} is {value!r}, not a count")
    return value


def _amount(value: Any, key: str) -> float:
    if (isinstance(value, bool) or not isinstance(value, int | float)
            or not math.isfinite(value) or value < 0):  # fmt: skip
        raise ValueError(f"{key} is {value!r}, not an amount")
    return float(value)


def _totals_from_json(data: Any) -> DailyTotals:
    """Validate saved totals; ValueError says what is wrong with them."""
    if not isinstance(data, Mapping) or data.get("format") != USAGE_FORMAT:
        raise ValueError("not an edgevoice usage file")
    version = data.get("version")
    if version != USAGE_VERSION:
        raise ValueError(f"usage file version {version!r} is not {USAGE_VERSION}")
    by_modality = data.get("by_modality", {})
    if not isinstance(by_modality, Mapping):
        raise ValueError("by_modality is not an object")
    totals = DailyTotals(check_day(data.get("day")), _amount(data.get("cost_usd", 0), "cost_usd"))
    for key in _COUNTS:
        setattr(totals, key, _count(data, key))
    for m in MODALITIES:
        totals.by_modality[m] = _amount(by_modality.get(m, 0.0), f"by_modality.{m}")
    return totals


def _money(amount: float, currency: str, digits: int) -> str:
    symbol = _SYMBOLS.get(currency)
    return f"{symbol}{amount:.{digits}f}" if symbol else f"{amount:.{digits}f} {currency}"


def describe_turn(
    cost: TurnCost,
    *,
    today_usd: float | None = None,
    budget_usd: float = 0.0,
    currency: str = "USD",
) -> str:
    """One log line, e.g. "turn cost $0.0123 (audio in 0.0050, audio out 0.0070),
    today $0.41 of $2.00"; kinds of token that cost less than 0.00005 are left out."""
    if cost.priced:
        shown = {_LABELS[m]: f"{amount:.4f}" for m, amount in cost.parts().items()}
        parts = ", ".join(f"{label} {text}" for label, text in shown.items() if text != "0.0000")
        line = f"turn cost {_money(cost.total, currency, 4)}" + (f" ({parts})" if parts else "")
    else:
        line = (f'turn cost not counted: no price for model "{cost.model}" '
                f"({cost.tokens.input} tokens in, {cost.tokens.output} out)")  # fmt: skip
    if today_usd is not None:
        line += f", today {_money(today_usd, currency, 2)}"
        if budget_usd > 0:
            line += f" of {_money(budget_usd, currency, 2)}"
            if today_usd >= budget_usd - _BUDGET_SLACK_USD:
                line += " (budget spent)"
    return line

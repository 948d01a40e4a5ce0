"""What each response costs, today's total and the daily budget; every amount hand-computed."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, replace
from typing import Any

import pytest

from device.config import CostConfig
from device.cost import (
    DEFAULT_PRICES,
    MODALITIES,
    PRICE_KEYS,
    CostLedger,
    DailyTotals,
    Prices,
    PriceTable,
    Tokens,
    TurnCost,
    describe_turn,
    family_of,
    price_for,
    turn_cost,
)
from device.realtime.events import Usage

GPT_REALTIME = DEFAULT_PRICES["gpt-realtime"]

# The usage of a short spoken reply, as response.done reports it (the same numbers as
# the parser's fixture): 4.55 s of reply audio (91 tokens), part of the input cached.
REPLY = Usage(
    total_tokens=253, input_tokens=132, output_tokens=121,
    input_text_tokens=119, input_audio_tokens=13, input_image_tokens=0,
    cached_tokens=64, cached_text_tokens=60, cached_audio_tokens=4, cached_image_tokens=0,
    output_text_tokens=30, output_audio_tokens=91,
)  # fmt: skip
# A later turn of a longer conversation that also sent a photo.
LATER = Usage(
    total_tokens=3020, input_tokens=2815, output_tokens=205,
    input_text_tokens=1200, input_audio_tokens=850, input_image_tokens=765,
    cached_tokens=1664, cached_text_tokens=1024, cached_audio_tokens=640, cached_image_tokens=0,
    output_text_tokens=45, output_audio_tokens=160,
)  # fmt: skip


@dataclass(frozen=True)
class Settings:
    daily_budget_usd: float = 0.0
    currency: str = "USD"
    prices: PriceTable = DEFAULT_PRICES


def dollar_per_token(modality: str = "audio_out", usd: float = 1.0) -> PriceTable:
    """A price table where one token of ``modality`` costs ``usd`` and the rest nothing."""
    free = dict.fromkeys(PRICE_KEYS, 0.0)
    return PriceTable({"test-model": Prices(**{**free, f"{modality}_per_mtok": usd * 1e6})})


def audio_out(tokens: int) -> Usage:
    return Usage(output_tokens=tokens, output_audio_tokens=tokens)


# --- prices -------------------------------------------------------------------------


def test_built_in_prices_per_1m_tokens() -> None:
    built_in = DEFAULT_PRICES["gpt-realtime"]
    assert built_in == Prices(
        text_in_per_mtok=4.00, text_cached_per_mtok=0.40,
        audio_in_per_mtok=32.00, audio_cached_per_mtok=0.40,
        image_in_per_mtok=5.00, image_cached_per_mtok=0.50,
        text_out_per_mtok=16.00, audio_out_per_mtok=64.00,
    )  # fmt: skip
    assert DEFAULT_PRICES["gpt-realtime-2025-08-28"] == GPT_REALTIME
    assert DEFAULT_PRICES["gpt-realtime-1.5"] == GPT_REALTIME
    assert DEFAULT_PRICES["gpt-realtime-2"] == replace(GPT_REALTIME, text_out_per_mtok=24.00)
    assert list(DEFAULT_PRICES) == [
        "gpt-realtime", "gpt-realtime-2025-08-28", "gpt-realtime-1.5", "gpt-realtime-2",
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("model", "family"),
    [
        ("gpt-realtime", "gpt-realtime"),
        ("gpt-realtime-1.5", "gpt-realtime-1.5"),
        ("gpt-realtime-2", "gpt-realtime-2"),
        ("gpt-realtime-1.5-2026-01-15", "gpt-realtime-1.5"),  # a dated snapshot
        ("gpt-realtime-2-2026-03-01", "gpt-realtime-2"),
        ("gpt-realtime-2025-12-01", "gpt-realtime"),  # not "gpt-realtime-2": "025" is no family
        ("gpt-realtime-mini", "gpt-realtime"),
        ("gpt-realtime-2.1", "gpt-realtime"),  # a family ends where a "-" begins
        ("gpt-realtime2", None),
        ("gpt-4o-realtime-preview", None),
        ("whisper-1", None),
        ("", None),
    ],
)
def test_model_families(model: str, family: str | None) -> None:
    assert family_of(model, DEFAULT_PRICES) == family
    expected = None if family is None else DEFAULT_PRICES[family]
    assert price_for(model, DEFAULT_PRICES) == expected


def test_configured_models_take_part_in_families() -> None:
    own = Prices(1.0, 0.1, 2.0, 0.2, 3.0, 0.3, 4.0, 5.0)
    table = PriceTable({**DEFAULT_PRICES, "acme-voice": own})
    assert price_for("acme-voice-2026-01-01", table) == own
    assert price_for("acme-voice-2026-01-01", DEFAULT_PRICES) is None


def test_price_table_is_an_immutable_hashable_mapping() -> None:
    copy = PriceTable(dict(DEFAULT_PRICES))
    assert copy == DEFAULT_PRICES
    assert hash(copy) == hash(DEFAULT_PRICES)
    assert copy == dict(DEFAULT_PRICES)
    assert not hasattr(copy, "__setitem__")
    assert copy.as_dict()["gpt-realtime-2"]["text_out_per_mtok"] == 24.0
    assert list(copy.as_dict()["gpt-realtime"]) == list(PRICE_KEYS)


# --- one response -------------------------------------------------------------------


def test_a_short_reply_costs_what_the_formula_says() -> None:
    cost = turn_cost(REPLY, GPT_REALTIME)
    # Uncached = input - cached: text 119-60 = 59, audio 13-4 = 9.
    assert cost.tokens == Tokens(text_in=59, text_cached=60, audio_in=9, audio_cached=4,
                                 text_out=30, audio_out=91)  # fmt: skip
    assert cost.text_in == pytest.approx(59 * 4.00e-6)  # 0.000236
    assert cost.text_cached == pytest.approx(60 * 0.40e-6)  # 0.000024
    assert cost.audio_in == pytest.approx(9 * 32.00e-6)  # 0.000288
    assert cost.audio_cached == pytest.approx(4 * 0.40e-6)  # 0.0000016
    assert cost.image_in == 0.0
    assert cost.image_cached == 0.0
    assert cost.text_out == pytest.approx(30 * 16.00e-6)  # 0.00048
    assert cost.audio_out == pytest.approx(91 * 64.00e-6)  # 0.005824
    assert cost.total == pytest.approx(0.0068536)
    assert cost.priced
    assert (cost.tokens.input, cost.tokens.output) == (132, 121)


def test_a_later_turn_with_a_photo_on_gpt_realtime_2() -> None:
    cost = turn_cost(LATER, DEFAULT_PRICES["gpt-realtime-2"])
    assert cost.tokens == Tokens(176, 1024, 210, 640, 765, 0, 45, 160)
    expected = {
        "text_in": 176 * 4.00e-6,  # 0.000704
        "text_cached": 1024 * 0.40e-6,  # 0.0004096
        "audio_in": 210 * 32.00e-6,  # 0.00672
        "audio_cached": 640 * 0.40e-6,  # 0.000256
        "image_in": 765 * 5.00e-6,  # 0.003825
        "image_cached": 0.0,
        "text_out": 45 * 24.00e-6,  # 0.00108: the one price gpt-realtime-2 changes
        "audio_out": 160 * 64.00e-6,  # 0.01024
    }
    assert cost.parts() == pytest.approx(expected)
    assert list(cost.parts()) == list(MODALITIES)
    assert cost.total == pytest.approx(0.0232346)


def test_a_minute_of_audio_costs_what_the_reference_says() -> None:
    # 10 input tokens a second, 20 output tokens a second.
    minute = Usage(input_audio_tokens=600, output_audio_tokens=1200)
    cost = turn_cost(minute, GPT_REALTIME)
    assert cost.audio_in == pytest.approx(0.0192)
    assert cost.audio_out == pytest.approx(0.0768)


def test_cached_image_tokens_are_a_subset_of_the_image_input() -> None:
    cost = turn_cost(Usage(input_image_tokens=1000, cached_image_tokens=200), GPT_REALTIME)
    assert (cost.tokens.image_in, cost.tokens.image_cached) == (800, 200)
    assert cost.image_in == pytest.approx(800 * 5.00e-6)
    assert cost.image_cached == pytest.approx(200 * 0.50e-6)
    assert cost.total == pytest.approx(0.0041)


def test_fully_cached_input_costs_only_the_cached_price() -> None:
    usage = Usage(input_text_tokens=500, cached_text_tokens=500,
                  input_audio_tokens=100, cached_audio_tokens=100)  # fmt: skip
    cost = turn_cost(usage, GPT_REALTIME)
    assert (cost.text_in, cost.audio_in) == (0.0, 0.0)
    assert cost.total == pytest.approx(600 * 0.40e-6)


def test_a_cached_count_above_its_input_never_goes_negative() -> None:
    usage = Usage(input_text_tokens=10, cached_text_tokens=15, input_audio_tokens=0,
                  cached_audio_tokens=3, output_audio_tokens=-5)  # fmt: skip
    cost = turn_cost(usage, GPT_REALTIME)
    assert cost.tokens == Tokens(text_in=0, text_cached=15, audio_cached=3)
    assert all(amount >= 0 for amount in cost.parts().values())
    assert cost.total == pytest.approx(18 * 0.40e-6)


def test_zero_usage_costs_nothing() -> None:
    cost = turn_cost(Usage(), GPT_REALTIME)
    assert cost == TurnCost()
    assert cost.total == 0.0
    assert describe_turn(cost) == "turn cost $0.0000"


# --- the ledger -----------------------------------------------------------------------


def test_record_prices_by_model_and_adds_up_the_day() -> None:
    ledger = CostLedger("2025-09-01", Settings())
    first = ledger.record(REPLY, "gpt-realtime-1.5", "2025-09-01")
    second = ledger.record(LATER, "gpt-realtime-2", "2025-09-01")
    assert first.model == "gpt-realtime-1.5"
    assert first.total == pytest.approx(0.0068536)
    assert second.total == pytest.approx(0.0232346)
    today = ledger.today
    assert today.day == "2025-09-01"
    assert today.cost_usd == pytest.approx(0.0068536 + 0.0232346)
    assert (today.input_tokens, today.output_tokens) == (132 + 2815, 121 + 205)
    assert (today.responses, today.unpriced_responses) == (2, 0)
    assert today.by_modality["audio_out"] == pytest.approx((91 + 160) * 64e-6)
    assert today.by_modality["image_in"] == pytest.approx(765 * 5e-6)
    assert sum(today.by_modality.values()) == pytest.approx(today.cost_usd)


def test_a_snapshot_of_a_known_model_is_priced_like_its_family() -> None:
    ledger = CostLedger("2025-09-01", Settings())
    cost = ledger.record(REPLY, "gpt-realtime-1.5-2026-01-15", "2025-09-01")
    assert cost.priced
    assert cost.total == pytest.approx(0.0068536)


def test_an_unknown_model_counts_tokens_but_no_cost() -> None:
    ledger = CostLedger("2025-09-01", Settings(daily_budget_usd=1.0))
    cost = ledger.record(REPLY, "acme-voice", "2025-09-01")
    assert not cost.priced
    assert cost.total == 0.0
    assert cost.tokens.input == 132
    assert ledger.today.responses == ledger.today.unpriced_responses == 1
    assert ledger.today.input_tokens == 132
    assert ledger.today.cost_usd == 0.0
    assert ledger.describe(cost) == (
        'turn cost not counted: no price for model "acme-voice" (132 tokens in, 121 out), '
        "today $0.00 of $1.00"
    )


def test_a_new_day_starts_a_fresh_total() -> None:
    ledger = CostLedger("2025-09-01", Settings())
    ledger.record(REPLY, "gpt-realtime", "2025-09-01")
    ledger.record(REPLY, "gpt-realtime", "2025-09-01")
    assert ledger.today.responses == 2
    cost = ledger.record(LATER, "gpt-realtime", "2025-09-02")
    assert ledger.today.day == "2025-09-02"
    assert ledger.today.responses == 1
    assert ledger.today.cost_usd == pytest.approx(cost.total)
    assert ledger.roll_over("2025-09-02") is False
    assert ledger.roll_over("2025-09-05") is True
    assert ledger.today == DailyTotals("2025-09-05")


def test_a_clock_a_little_behind_keeps_counting_into_the_later_day() -> None:
    # After a restart a Pi may read yesterday's time until it is synchronised.
    ledger = CostLedger("2025-09-02", Settings())
    ledger.record(REPLY, "gpt-realtime", "2025-09-02")
    assert ledger.roll_over("2025-09-01") is False
    ledger.record(REPLY, "gpt-realtime", "2025-09-01")
    assert (ledger.today.day, ledger.today.responses) == ("2025-09-02", 2)
    # A date much earlier is taken as the real one: a wrong date far ahead must not
    # hold a spent budget for long.
    assert ledger.roll_over("2025-08-30") is True
    assert ledger.today == DailyTotals("2025-08-30")


@pytest.mark.parametrize("day", ["2025-9-1", "20250901", "2025-02-30", "yesterday", ""])
def test_days_must_be_iso_dates(day: str) -> None:
    with pytest.raises(ValueError, match="is not an ISO date"):
        CostLedger(day, Settings())
    ledger = CostLedger("2025-09-01", Settings())
    with pytest.raises(ValueError, match="is not an ISO date"):
        ledger.record(REPLY, "gpt-realtime", day)


def test_without_a_budget_nothing_is_ever_spent() -> None:
    ledger = CostLedger("2025-09-01", Settings(prices=dollar_per_token()))
    ledger.record(audio_out(1000), "test-model", "2025-09-01")
    assert ledger.today.cost_usd == 1000.0
    assert not ledger.budget_spent
    assert ledger.remaining_usd is None
    assert not ledger.take_budget_notice()


def test_the_budget_is_spent_exactly_at_the_boundary() -> None:
    ledger = CostLedger("2025-09-01", Settings(2.0, prices=dollar_per_token()))
    ledger.record(audio_out(1), "test-model", "2025-09-01")
    assert (ledger.budget_spent, ledger.remaining_usd) == (False, 1.0)
    ledger.record(audio_out(1), "test-model", "2025-09-01")
    assert ledger.today.cost_usd == 2.0
    assert ledger.budget_spent
    assert ledger.remaining_usd == 0.0
    ledger.record(audio_out(1), "test-model", "2025-09-01")
    assert ledger.remaining_usd == 0.0  # never negative


def test_just_under_the_budget_is_not_spent() -> None:
    ledger = CostLedger("2025-09-01", Settings(2.0, prices=dollar_per_token(usd=0.999999)))
    ledger.record(audio_out(1), "test-model", "2025-09-01")
    ledger.record(audio_out(1), "test-model", "2025-09-01")
    assert not ledger.budget_spent
    assert ledger.remaining_usd == pytest.approx(2e-6)


def test_rounding_of_many_small_turns_does_not_miss_the_budget() -> None:
    ledger = CostLedger("2025-09-01", Settings(2.0, prices=dollar_per_token(usd=0.1)))
    for _ in range(20):
        ledger.record(audio_out(1), "test-model", "2025-09-01")
    assert ledger.today.cost_usd == pytest.approx(2.0)
    assert ledger.budget_spent


def test_the_budget_notice_comes_once_a_day() -> None:
    ledger = CostLedger("2025-09-01", Settings(1.0, prices=dollar_per_token()))
    assert not ledger.take_budget_notice()
    ledger.record(audio_out(1), "test-model", "2025-09-01")
    assert ledger.take_budget_notice()
    ledger.record(audio_out(1), "test-model", "2025-09-01")
    assert not ledger.take_budget_notice()
    assert ledger.roll_over("2025-09-02")
    assert not ledger.budget_spent
    assert not ledger.take_budget_notice()
    ledger.record(audio_out(1), "test-model", "2025-09-02")
    assert ledger.take_budget_notice()


def test_a_reloaded_budget_applies_to_today() -> None:
    ledger = CostLedger("2025-09-01", Settings(1.0, prices=dollar_per_token()))
    ledger.record(audio_out(1), "test-model", "2025-09-01")
    assert ledger.budget_spent and ledger.take_budget_notice()
    ledger.configure(Settings(5.0, prices=dollar_per_token()))
    assert not ledger.budget_spent
    assert ledger.remaining_usd == 4.0
    ledger.configure(Settings(1.0, prices=dollar_per_token()))
    assert ledger.take_budget_notice()  # spent again: worth saying again
    assert ledger.today.responses == 1


def test_the_ledger_takes_the_config_section_as_its_settings() -> None:
    ledger = CostLedger("2025-09-01", CostConfig(daily_budget_usd=2.0))
    ledger.record(REPLY, "gpt-realtime-1.5", "2025-09-01")
    assert ledger.remaining_usd == pytest.approx(2.0 - 0.0068536)


# --- the log line -------------------------------------------------------------------


def test_describe_a_turn_names_what_cost_something() -> None:
    ledger = CostLedger("2025-09-01", Settings(daily_budget_usd=2.0))
    cost = ledger.record(REPLY, "gpt-realtime-1.5", "2025-09-01")
    # Cached text (0.000024) and cached audio (0.0000016) round to nothing and are left out.
    assert ledger.describe(cost) == (
        "turn cost $0.0069 (text in 0.0002, audio in 0.0003, text out 0.0005, "
        "audio out 0.0058), today $0.01 of $2.00"
    )


def test_describe_without_a_budget_and_in_another_currency() -> None:
    cost = turn_cost(LATER, GPT_REALTIME)
    # 0.000704 + 0.0004096 + 0.00672 + 0.000256 + 0.003825 + 45 * 16e-6 + 0.01024 = 0.0228746
    assert cost.total == pytest.approx(0.0228746)
    assert describe_turn(cost, today_usd=0.4149, currency="EUR") == (
        "turn cost 0.0229 EUR (text in 0.0007, cached text 0.0004, audio in 0.0067, "
        "cached audio 0.0003, image in 0.0038, text out 0.0007, audio out 0.0102), "
        "today 0.41 EUR"
    )


def test_describe_says_when_the_budget_is_spent() -> None:
    cost = turn_cost(audio_out(100), GPT_REALTIME)
    line = describe_turn(cost, today_usd=2.0, budget_usd=2.0)
    assert line == "turn cost $0.0064 (audio out 0.0064), today $2.00 of $2.00 (budget spent)"


# --- saving and restoring -----------------------------------------------------------


def test_json_round_trip_continues_the_day() -> None:
    ledger = CostLedger("2025-09-01", Settings(daily_budget_usd=2.0))
    ledger.record(REPLY, "gpt-realtime-1.5", "2025-09-01")
    ledger.record(LATER, "acme-voice", "2025-09-01")
    saved = json.loads(json.dumps(ledger.to_json()))
    assert saved["format"] == "edgevoice-usage"
    assert saved["version"] == 1
    assert saved["day"] == "2025-09-01"
    assert saved["currency"] == "USD"
    restored, problem = CostLedger.from_json(saved, "2025-09-01", Settings(daily_budget_usd=2.0))
    assert problem is None
    assert restored.today == ledger.today
    assert restored.remaining_usd == ledger.remaining_usd


def test_to_json_is_a_snapshot() -> None:
    ledger = CostLedger("2025-09-01", Settings())
    snapshot = ledger.to_json()
    ledger.record(REPLY, "gpt-realtime", "2025-09-01")
    assert snapshot["responses"] == 0
    assert snapshot["by_modality"]["audio_out"] == 0.0


def test_saved_totals_of_an_earlier_day_are_left_behind() -> None:
    old = CostLedger("2025-09-01", Settings())
    old.record(REPLY, "gpt-realtime", "2025-09-01")
    restored, problem = CostLedger.from_json(old.to_json(), "2025-09-02", Settings())
    assert problem is None
    assert restored.today == DailyTotals("2025-09-02")


def test_saved_totals_just_ahead_of_the_clock_are_kept() -> None:
    saved = CostLedger("2025-09-02", Settings())
    saved.record(REPLY, "gpt-realtime", "2025-09-02")
    restored, problem = CostLedger.from_json(saved.to_json(), "2025-09-01", Settings())
    assert problem is None
    assert restored.today == saved.today
    far_ahead, _ = CostLedger.from_json(saved.to_json(), "2025-08-01", Settings())
    assert far_ahead.today == DailyTotals("2025-08-01")


def test_nothing_saved_is_no_problem() -> None:
    ledger, problem = CostLedger.from_json(None, "2025-09-01", Settings())
    assert problem is None
    assert ledger.today == DailyTotals("2025-09-01")


def good_json(**changes: Any) -> dict[str, Any]:
    ledger = CostLedger("2025-09-01", Settings())
    ledger.record(REPLY, "gpt-realtime", "2025-09-01")
    return {**ledger.to_json(), **changes}


@pytest.mark.parametrize(
    ("data", "why"),
    [
        ("not an object", "not an edgevoice usage file"),
        ([1, 2], "not an edgevoice usage file"),
        ({"day": "2025-09-01", "cost_usd": 1.0}, "not an edgevoice usage file"),
        (good_json(format="other-app"), "not an edgevoice usage file"),
        (good_json(version=2), "usage file version 2 is not 1"),
        (good_json(version="1"), "usage file version '1' is not 1"),
        (good_json(day="01/09/2025"), "day '01/09/2025' is not an ISO date"),
        (good_json(day=20250901), "day 20250901 is not an ISO date"),
        (good_json(cost_usd=-1.0), "cost_usd is -1.0, not an amount"),
        (good_json(cost_usd=math.nan), "cost_usd is nan, not an amount"),
        (good_json(cost_usd="0.41"), "cost_usd is '0.41', not an amount"),
        (good_json(responses=True), "responses is True, not a count"),
        (good_json(input_tokens=1.5), "input_tokens is 1.5, not a count"),
        (good_json(output_tokens=-3), "output_tokens is -3, not a count"),
        (good_json(by_modality=[]), "by_modality is not an object"),
        (good_json(by_modality={"audio_out": None}), "by_modality.audio_out is None"),
    ],
)
def test_a_corrupt_or_foreign_file_starts_afresh_and_says_why(data: Any, why: str) -> None:
    ledger, problem = CostLedger.from_json(data, "2025-09-01", Settings())
    assert problem is not None
    assert why in problem
    assert problem.endswith("; counting today from zero")
    assert ledger.today == DailyTotals("2025-09-01")


def test_missing_counts_in_a_saved_file_read_as_zero() -> None:
    data = {"format": "edgevoice-usage", "version": 1, "day": "2025-09-01", "cost_usd": 0.5}
    ledger, problem = CostLedger.from_json(data, "2025-09-01", Settings())
    assert problem is None
    assert ledger.today == DailyTotals("2025-09-01", cost_usd=0.5)

"""Forecasts against a history whose truth is known: six weeks of hourly spend with a daily and a
weekly pattern, a 1%-a-day trend and 10% noise, made of real gpt-4o calls at $0.009 each."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from opentelemetry_instrumentation_tokenbudget.finops import forecast as fc
from opentelemetry_instrumentation_tokenbudget.finops.series import Point, Series, bucket_spend

from .finops_history import DAY, HOUR, START, calls_from_history, make_history

HELD_OUT_DAY = 42  # Monday 2026-10-19, the seventh Monday


@pytest.fixture(scope="module")
def calls():
    return calls_from_history(make_history(HELD_OUT_DAY + 1, base_per_hour=0.2))


def spend_until(calls, now: float, step: int = HOUR) -> Series:
    points = [Point(c.start, c.cost_usd, "") for c in calls if c.start < now]
    return bucket_spend(points, step, START, now)[""]


def actual_day(calls, day: int) -> float:
    return sum(float(c.cost_usd) for c in calls if START + day * DAY <= c.start < START + (day + 1) * DAY)


def crossing(calls, day: int, limit: float) -> datetime:
    spent = 0.0
    for call in sorted(calls, key=lambda c: c.start):
        if START + day * DAY <= call.start < START + (day + 1) * DAY:
            spent += float(call.cost_usd)
            if spent >= limit:
                return datetime.fromtimestamp(call.start, timezone.utc)
    raise AssertionError("never crossed")


def test_backtest_ranks_the_seasonal_methods_above_the_burn_rate(calls):
    now = START + HELD_OUT_DAY * DAY + 10 * HOUR + 1800
    trial = fc.backtest(spend_until(calls, now), "day", now)
    assert trial.windows == fc.MAX_BACKTEST_WINDOWS
    table = {method: [round(trial.mape(method, cutoff), 4) for cutoff in fc.CUTOFFS] for method in fc.METHODS}
    # MAPE of the day's total forecast from a quarter, half and three quarters of the day.
    assert table == {
        "burn-rate": [0.7181, 0.4124, 0.0311],
        "seasonal-naive": [0.0492, 0.0385, 0.0169],
        "holt-winters": [0.0697, 0.0496, 0.0153],
    }
    assert round(trial.mape("seasonal-naive"), 4) == 0.0348
    assert trial.best() == "seasonal-naive"
    burn_rate = {"all": 0.3872, "0.25": 0.7181, "0.5": 0.4124, "0.75": 0.0311}
    assert trial.as_dict()["mape"]["burn-rate"] == burn_rate


def test_forecast_of_a_held_out_day_against_the_truth(calls):
    now = START + HELD_OUT_DAY * DAY + 10 * HOUR + 1800  # 10:30 UTC
    actual = actual_day(calls, HELD_OUT_DAY)
    limit = round(actual * 0.8, 2)
    result = fc.forecast(spend_until(calls, now), "day", now, limit=limit)
    assert result.method == "seasonal-naive"
    assert round(result.spent, 3) == 1.728
    assert round(result.forecast, 3) == 8.010
    assert round(actual, 3) == 8.217
    assert round(abs(result.forecast - actual) / actual, 4) == 0.0252  # 2.5% off the real day
    assert result.low < actual < result.high  # the 80% interval from the backtest's errors holds it
    assert (round(result.low, 3), round(result.high, 3)) == (7.982, 8.842)
    # The limit is passed about a quarter of an hour later than predicted.
    assert limit == 6.57
    assert result.exhausted_at == datetime(2026, 10, 19, 19, 36, 40, tzinfo=timezone.utc)
    actual_crossing = datetime(2026, 10, 19, 19, 22, 46, 666667, tzinfo=timezone.utc)
    assert crossing(calls, HELD_OUT_DAY, limit) == actual_crossing


def test_first_window_has_only_its_burn_rate_and_the_spread_of_its_buckets():
    series = Series(START, HOUR, (1.0, 3.0, 2.0, 2.0))  # four hours into the first day ever
    result = fc.forecast(series, "day", START + 4 * HOUR, limit=30)
    assert result.method == "burn-rate"
    assert result.spent == 8.0
    assert result.forecast == pytest.approx(48.0)  # $2 an hour for 24 hours
    spread = (2 / 3) ** 0.5 * 20**0.5 * 1.2816  # stdev of the four buckets x sqrt(20 hours) x z(80%)
    assert (result.low, result.high) == (pytest.approx(48 - spread), pytest.approx(48 + spread))
    assert result.exhausted_at == datetime.fromtimestamp(START + 15 * HOUR, timezone.utc)


def test_a_limit_already_passed_reports_when_it_was():
    series = Series(START, HOUR, (5.0, 5.0, 0.0))
    result = fc.forecast(series, "day", START + 2 * HOUR + 1800, limit=7.5)
    assert result.exhausted_at == datetime.fromtimestamp(START + HOUR + 1800, timezone.utc)


def test_month_window_on_daily_buckets(calls):
    now = START + HELD_OUT_DAY * DAY + 12 * HOUR  # 2026-10-19: September is the one complete month
    series = spend_until(calls, now, step=DAY)
    trial = fc.backtest(series, "month", now)
    assert trial.windows == 0  # the history starts on 7 September: no complete month to judge by
    result = fc.forecast(series, "month", now)
    assert result.method == "burn-rate"
    assert result.window.starts_at == datetime(2026, 10, 1, tzinfo=timezone.utc)
    october = sum(float(c.cost_usd) for c in calls if START + 24 * DAY <= c.start < now)
    assert result.spent == pytest.approx(october)


def test_holt_winters_recovers_a_clean_seasonal_trend():
    season = [1.0, 2.0, 4.0, 2.0]
    values = [v + 0.1 * t for t, v in enumerate(season * 12)]
    fit = fc.fit_holt_winters(values, 4)
    truth = [season[t % 4] + 0.1 * t for t in range(48, 52)]
    # The trend is damped (phi 0.98), so the projection bends slightly below a straight line.
    assert [round(v, 2) for v in fit.predict(4)] == [5.75, 6.81, 8.88, 6.96]
    assert fit.predict(4) == pytest.approx(truth, abs=0.15)

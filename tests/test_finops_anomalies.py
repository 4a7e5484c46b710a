"""Anomalies against injected truth: eight weeks of hourly spend (daily and weekly pattern, trend,
10% noise) with spikes of 1.5x to 4x the hour's spend and level shifts of 1.8x for 36 hours, made of
real gpt-4o calls; the spikes' extra calls belong to the feature 'export'."""

from __future__ import annotations

import pytest

from opentelemetry_instrumentation_tokenbudget.finops import anomalies as an
from opentelemetry_instrumentation_tokenbudget.finops.series import Point, bucket_spend

from .finops_history import DAY, HOUR, SHIFT_HOURS, START, calls_from_history, make_history

DAYS = 56


def history(seed: int):
    return make_history(
        DAYS, base_per_hour=0.2, spikes=6, shifts=3, spike_size=(1.5, 4), shift_factor=1.8, seed=seed
    )


def events(made):
    spikes = [(made.time_of(i), made.time_of(i + 1)) for i in made.spikes]
    shifts = [(made.time_of(i), made.time_of(i + SHIFT_HOURS)) for i in made.shifts]
    return spikes, shifts


def spend(calls):
    end = START + DAYS * DAY
    total = bucket_spend([Point(c.start, c.cost_usd, "") for c in calls], HOUR, START, end)[""]
    by_feature = bucket_spend(
        [Point(c.start, c.cost_usd, (("feature", c.attributes["tokenbudget.feature"]),)) for c in calls],
        HOUR,
        START,
        end,
    )
    return total, by_feature


def detect(series, sensitivity: float):
    total, by_feature = series
    return an.find_anomalies(total, {}, 14 * 24, sensitivity=sensitivity, drivers=by_feature)


@pytest.fixture(scope="module")
def runs():
    made = [history(seed) for seed in range(3)]
    return [(one, calls, spend(calls)) for one in made for calls in [calls_from_history(one)]]


@pytest.mark.parametrize(
    ("sensitivity", "expected"),
    [
        # (precision, recall) over the three histories' 18 spikes and 9 level shifts
        ("low", (1.0, 0.8519)),
        ("medium", (1.0, 0.9259)),
        ("high", (1.0, 0.963)),
    ],
)
def test_precision_and_recall_on_injected_spikes_and_shifts(runs, sensitivity, expected):
    found_all = right = 0
    hit = total = 0
    for made, _, series in runs:
        spikes, shifts = events(made)
        found = detect(series, an.SENSITIVITY[sensitivity])
        precision, recall = an.score_against_truth(found, spikes + shifts)
        found_all += len(found)
        right += round(precision * len(found))
        hit += round(recall * len(spikes + shifts))
        total += len(spikes + shifts)
    assert (round(right / found_all, 4), round(hit / total, 4)) == expected


def test_a_spike_names_its_driver(runs):
    made, calls, series = runs[0]
    found = detect(series, an.DEFAULT_SENSITIVITY)
    spiked = [a for a in found if any(a.start == made.time_of(i) for i in made.spikes)]
    # Five of the six spikes; the sixth, adding 1.7x the hour's expected spend, stayed in the band.
    assert len(spiked) == 5
    anomaly = spiked[0]
    assert anomaly.end - anomaly.start == HOUR
    assert anomaly.drivers[0].key == {"feature": "export"}
    extra = sum(
        float(c.cost_usd)
        for c in calls
        if c.attributes["tokenbudget.feature"] == "export" and anomaly.start <= c.start < anomaly.end
    )
    assert anomaly.drivers[0].excess == pytest.approx(extra)
    assert anomaly.observed - anomaly.expected == pytest.approx(extra, rel=0.35)


def test_quiet_history_has_no_anomalies():
    made = make_history(DAYS, base_per_hour=0.2, seed=11)
    found = detect(spend(calls_from_history(made)), an.DEFAULT_SENSITIVITY)
    assert found == []


def test_the_daily_rhythm_is_not_an_anomaly_but_the_same_spend_at_night_is():
    values = [0.1] * 8 + [1.0] * 10 + [0.1] * 6  # an office day
    history = values * 21
    night = 21 * 24 + 3
    series_values = history + values
    series_values[night] = 1.0  # an office hour's spend at 3 am
    from opentelemetry_instrumentation_tokenbudget.finops.series import Series

    series = Series(START, HOUR, tuple(series_values))
    found = an.find_anomalies(series, {"tenant": "t9"}, 21 * 24)
    assert [(a.start, a.end, a.key) for a in found] == [
        (START + night * HOUR, START + (night + 1) * HOUR, {"tenant": "t9"})
    ]
    assert found[0].expected == pytest.approx(0.1)

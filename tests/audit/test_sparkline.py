"""The dashboard home's denials sparkline: one bar per hour of the window, empty hours kept, scaled to the busiest."""

from __future__ import annotations

import datetime as dt

from audit.charts import build_sparkline
from audit.queries import ChartWindow

START = dt.datetime(2026, 12, 5, 6, 0, tzinfo=dt.UTC)


def test_keeps_every_hour_and_scales_to_the_busiest() -> None:
    window = ChartWindow(START, START + dt.timedelta(hours=23, minutes=30), "hour")
    counts = {START + dt.timedelta(hours=2): {"deny": 4, "allow": 9}, START + dt.timedelta(hours=23): {"deny": 2}}
    spark = build_sparkline(window, counts)
    assert len(spark.rects) == 24
    assert [rect.count for rect in spark.rects if rect.count] == [4, 2]  # other outcomes are not drawn
    assert (spark.total, spark.peak) == (6, 4)
    busiest, later = spark.rects[2], spark.rects[23]
    assert busiest.height == spark.height - 2 and later.height == (spark.height - 2) / 2
    assert all(rect.height == 1.0 for rect in spark.rects if not rect.count)  # the baseline stays visible
    assert busiest.title == "05 Dec 08:00: 4 denied"
    assert (
        spark.description
        == "6 denied events in 24 hours from 2026-12-05 06:00 UTC; the most, 4, in the hour from 05 Dec 08:00 UTC"
    )


def test_an_empty_window_says_so() -> None:
    spark = build_sparkline(ChartWindow(START, START + dt.timedelta(hours=24), "hour"), {})
    assert spark.total == 0 and len(spark.rects) == 24
    assert spark.description == "0 denied events in 24 hours from 2026-12-05 06:00 UTC"

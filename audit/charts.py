"""A stacked bar chart of events over time by outcome, computed here and drawn as inline SVG by a template
(no JavaScript, no chart library, nothing loaded from elsewhere)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from audit.queries import ChartWindow

WIDTH, HEIGHT = 760, 220
LEFT, RIGHT, TOP, BOTTOM = 52, 12, 12, 36
# Stacking order and colours (colour-blind safe enough with the legend and the per-bar titles).
OUTCOMES = (
    ("success", "Success", "#2e7d32"),
    ("allow", "Allowed", "#1565c0"),
    ("failure", "Failure", "#ef6c00"),
    ("deny", "Denied", "#c62828"),
)
_STEP = {"hour": dt.timedelta(hours=1), "day": dt.timedelta(days=1), "week": dt.timedelta(weeks=1)}
_LABEL = {"hour": "%d %b %H:00", "day": "%d %b", "week": "%d %b"}


@dataclass(frozen=True)
class Rect:
    x: float
    y: float
    width: float
    height: float
    color: str
    outcome: str
    count: int
    title: str


@dataclass(frozen=True)
class Tick:
    x: float
    y: float
    label: str


@dataclass
class Chart:
    """Everything the SVG template draws, in SVG coordinates."""

    width: int = WIDTH
    height: int = HEIGHT
    plot_left: int = LEFT
    plot_right: int = WIDTH - RIGHT
    plot_top: int = TOP
    plot_bottom: int = HEIGHT - BOTTOM
    rects: list[Rect] = field(default_factory=list)
    y_ticks: list[Tick] = field(default_factory=list)
    x_ticks: list[Tick] = field(default_factory=list)
    legend: list[tuple[str, str, str, int]] = field(default_factory=list)  # key, label, colour, total
    total: int = 0
    bar_kind: str = "day"
    description: str = ""


def _floor(value: dt.datetime, kind: str) -> dt.datetime:
    value = value.astimezone(dt.UTC).replace(minute=0, second=0, microsecond=0)
    if kind == "hour":
        return value
    value = value.replace(hour=0)
    return value - dt.timedelta(days=value.weekday()) if kind == "week" else value


def _tick_step(peak: int) -> int:
    """A round gridline step (1, 2 or 5 × 10ⁿ) giving at most four steps up to `peak`."""
    magnitude = 1
    while True:
        for step in (1, 2, 5):
            if step * magnitude * 4 >= peak:
                return step * magnitude
        magnitude *= 10


def _buckets(window: ChartWindow) -> list[dt.datetime]:
    """The start of every hour/day/week bar of `window`, empty ones too (at most 400)."""
    step = _STEP[window.kind]
    buckets: list[dt.datetime] = []
    current = _floor(window.start, window.kind)
    while current < window.end and len(buckets) < 400:
        buckets.append(current)
        current += step
    return buckets


def build_chart(window: ChartWindow, counts: dict[dt.datetime, dict[str, int]]) -> Chart:
    """Lay out one bar per hour/day/week of `window` (empty ones too), stacked by outcome."""
    buckets = _buckets(window)
    chart = Chart(bar_kind=window.kind)
    totals = {key: 0 for key, _, _ in OUTCOMES}
    peak = 0
    for bucket in buckets:
        per = counts.get(bucket, {})
        peak = max(peak, sum(per.values()))
        for key in totals:
            totals[key] += per.get(key, 0)
    step_value = _tick_step(max(peak, 1))
    top = step_value * -(-max(peak, 1) // step_value)
    plot_height = chart.plot_bottom - chart.plot_top
    slot = (chart.plot_right - chart.plot_left) / max(len(buckets), 1)
    bar = max(slot * 0.8, 1.0)
    for index, bucket in enumerate(buckets):
        per = counts.get(bucket, {})
        y = float(chart.plot_bottom)
        x = chart.plot_left + index * slot + (slot - bar) / 2
        for key, label, color in OUTCOMES:
            count = per.get(key, 0)
            if not count:
                continue
            height = count / top * plot_height
            y -= height
            title = f"{bucket.strftime(_LABEL[window.kind])}: {count} {label.lower()}"
            chart.rects.append(
                Rect(round(x, 2), round(y, 2), round(bar, 2), round(height, 2), color, key, count, title)
            )
    for value in range(0, top + 1, step_value):
        y = chart.plot_bottom - value / top * plot_height
        chart.y_ticks.append(Tick(chart.plot_left - 6, round(y, 2), f"{value:,}"))
    every = max(1, -(-len(buckets) // 8))
    for index in range(0, len(buckets), every):
        x = chart.plot_left + index * slot + slot / 2
        chart.x_ticks.append(Tick(round(x, 2), chart.plot_bottom + 16, buckets[index].strftime(_LABEL[window.kind])))
    chart.legend = [(key, label, color, totals[key]) for key, label, color in OUTCOMES]
    chart.total = sum(totals.values())
    chart.description = (
        f"{chart.total:,} events from {window.start:%Y-%m-%d %H:%M} to {window.end:%Y-%m-%d %H:%M} UTC, "
        f"one bar per {window.kind}: " + ", ".join(f"{totals[key]:,} {label.lower()}" for key, label, _ in OUTCOMES)
    )
    return chart


# --- The sparkline: one outcome over a short window, small, no axes (the dashboard home) --------------------------

SPARK_WIDTH, SPARK_HEIGHT = 240, 40


@dataclass
class Sparkline:
    """Bars of one outcome's count per bar of a window, in SVG coordinates; `description` reads it aloud."""

    width: int = SPARK_WIDTH
    height: int = SPARK_HEIGHT
    rects: list[Rect] = field(default_factory=list)
    total: int = 0
    peak: int = 0
    description: str = ""


def build_sparkline(window: ChartWindow, counts: dict[dt.datetime, dict[str, int]], outcome: str = "deny") -> Sparkline:
    """One bar per hour/day of `window` for `outcome` (counts as `queries.outcome_counts` returns them), scaled to
    the busiest bar; an empty bar is a 1-pixel baseline so the time axis stays visible."""
    label, color = next((lbl, col) for key, lbl, col in OUTCOMES if key == outcome)
    buckets = _buckets(window)
    values = [counts.get(bucket, {}).get(outcome, 0) for bucket in buckets]
    spark = Sparkline(total=sum(values), peak=max(values, default=0))
    slot = spark.width / max(len(buckets), 1)
    bar = max(slot - 1, 1.0)
    for index, (bucket, count) in enumerate(zip(buckets, values, strict=True)):
        height = max(count / spark.peak * (spark.height - 2), 1.0) if count else 1.0
        title = f"{bucket.strftime(_LABEL[window.kind])}: {count} {label.lower()}"
        spark.rects.append(
            Rect(
                round(index * slot, 2),
                round(spark.height - height, 2),
                round(bar, 2),
                round(height, 2),
                color if count else "currentColor",
                outcome,
                count,
                title,
            )
        )
    busiest = ""
    if spark.peak:
        at = buckets[values.index(spark.peak)]
        busiest = f"; the most, {spark.peak:,}, in the {window.kind} from {at.strftime(_LABEL[window.kind])} UTC"
    spark.description = (
        f"{spark.total:,} {label.lower()} events in {len(buckets)} {window.kind}s "
        f"from {window.start:%Y-%m-%d %H:%M} UTC{busiest}"
    )
    return spark

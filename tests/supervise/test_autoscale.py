"""The autoscaling policy: thresholds, hysteresis, cool-downs, bounds; and the load read from /metrics."""

from __future__ import annotations

import pytest

from oar.supervise.autoscale import AutoscalePolicy, Load, Sample, load_between

POLICY = AutoscalePolicy(target_in_flight=4, up_cooldown_s=5, down_cooldown_s=30)


def desired(current: int, in_flight: float, wait: float = 0.0, up: float = 60, change: float = 60) -> int:
    return POLICY.desired(current, 1, 4, Load(in_flight, wait), since_up_s=up, since_change_s=change)


def test_scales_up_straight_to_what_the_load_needs_within_max() -> None:
    assert desired(1, 4.5) == 2
    assert desired(1, 13.0) == 4
    assert desired(2, 100.0) == 4
    assert desired(4, 100.0) == 4


def test_a_long_queue_wait_scales_up_even_with_few_requests_in_flight() -> None:
    assert desired(1, 1.0, wait=80.0) == 2


def test_hysteresis_band_keeps_the_count() -> None:
    assert desired(2, 8.0) == 2  # at target: no change
    assert desired(2, 3.0) == 2  # one replica would carry 3 > 4 * 0.5: stay
    assert desired(2, 1.5) == 1  # one replica would carry 1.5 < 2: go down
    assert desired(3, 0.0) == 2  # down one step at a time


def test_cool_downs_hold_changes_back() -> None:
    assert desired(1, 20.0, up=2) == 1
    assert desired(2, 0.0, change=10) == 2
    assert desired(2, 0.0, change=30) == 1


def test_bounds_win_over_the_load() -> None:
    assert desired(1, 0.0) == 1
    assert POLICY.desired(0, 1, 4, Load(0), 0, 0) == 1
    assert POLICY.desired(6, 1, 4, Load(100), 0, 0) == 4


def test_policies_without_a_band_are_refused() -> None:
    with pytest.raises(ValueError, match="hysteresis"):
        AutoscalePolicy(up_ratio=0.5, down_ratio=0.5)
    with pytest.raises(ValueError):
        AutoscalePolicy(target_in_flight=0)


METRICS = """# TYPE oar_inflight_requests gauge
oar_inflight_requests{{model="m",version="1"}} {inflight}
# TYPE oar_queue_depth gauge
oar_queue_depth{{model="m",version="1"}} {depth}
# TYPE oar_queue_duration_seconds histogram
oar_queue_duration_seconds_sum{{model="m",version="1"}} {wait}
oar_queue_duration_seconds_count{{model="m",version="1"}} {count}
"""


def test_load_is_read_from_each_replicas_metrics() -> None:
    first = [Sample.parse(METRICS.format(inflight=2, depth=1, wait=1.0, count=100)), Sample(1, 0.5, 50)]
    second = [Sample.parse(METRICS.format(inflight=4, depth=0, wait=1.5, count=200)), Sample(3, 0.5, 50)]
    assert first[0] == Sample(3.0, 1.0, 100.0)
    load = load_between([first, second])
    assert load.in_flight == pytest.approx((4 + 7) / 2)
    assert load.queue_wait_ms == pytest.approx(5.0)  # 0.5 s over 100 more requests
    assert load_between([]) == Load(0.0)

"""Attestation cadence: the next due time from as_of, calendar months keeping the month's end."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from indexer.cadence import add_months, next_due, next_period
from indexer.config import ReservesConfig

END_MAY = datetime(2025, 5, 31, 23, 59, 59, tzinfo=UTC)


@pytest.mark.parametrize(
    ("start", "months", "expected"),
    [
        (END_MAY, 1, datetime(2025, 6, 30, 23, 59, 59, tzinfo=UTC)),
        (datetime(2025, 6, 30, tzinfo=UTC), 1, datetime(2025, 7, 31, tzinfo=UTC)),
        (datetime(2025, 1, 31, tzinfo=UTC), 1, datetime(2025, 2, 28, tzinfo=UTC)),
        (datetime(2024, 1, 31, tzinfo=UTC), 1, datetime(2024, 2, 29, tzinfo=UTC)),
        (datetime(2025, 5, 15, 12, tzinfo=UTC), 1, datetime(2025, 6, 15, 12, tzinfo=UTC)),
        (datetime(2025, 11, 30, tzinfo=UTC), 3, datetime(2026, 2, 28, tzinfo=UTC)),
        (datetime(2025, 12, 31, tzinfo=UTC), 1, datetime(2026, 1, 31, tzinfo=UTC)),
    ],
)
def test_add_months(start: datetime, months: int, expected: datetime) -> None:
    assert add_months(start, months) == expected


def test_next_period_and_due() -> None:
    assert next_period(END_MAY, "daily") == END_MAY + timedelta(days=1)
    assert next_period(END_MAY, "weekly") == END_MAY + timedelta(days=7)
    assert next_period(END_MAY, "quarterly") == datetime(2025, 8, 31, 23, 59, 59, tzinfo=UTC)
    assert next_period(END_MAY, 86400.0 * 30) == END_MAY + timedelta(days=30)
    # monthly with 30 days' grace: the June attestation is overdue from 30 July
    assert next_due(END_MAY, "monthly", 30 * 86400, 1.0) == datetime(2025, 7, 30, 23, 59, 59, tzinfo=UTC)
    # no cadence: as_of + max_age (the former fixed age)
    assert next_due(END_MAY, None, 0.0, 172800.0) == END_MAY + timedelta(days=2)


def test_config_forms() -> None:
    cfg = ReservesConfig.model_validate({"url": "file://r.json", "cadence": "monthly", "grace": "30d"})
    assert cfg.cadence == "monthly" and cfg.grace == 30 * 86400
    assert ReservesConfig.model_validate({"url": "file://r.json", "cadence": "7d"}).cadence == 7 * 86400
    none = ReservesConfig.model_validate({"url": "file://r.json", "cadence": None})
    assert none.cadence is None and none.grace == 0
    with pytest.raises(ValueError, match="invalid cadence 'yearly': expected daily, weekly, monthly"):
        ReservesConfig.model_validate({"url": "file://r.json", "cadence": "yearly"})
    with pytest.raises(ValueError, match="grace"):
        ReservesConfig.model_validate({"url": "file://r.json", "cadence": "monthly", "grace": "-1d"})
    with pytest.raises(ValueError, match=r"signature_url needs reserves\.public_key"):
        ReservesConfig.model_validate({"url": "file://r.json", "signature_url": "file://r.sig"})

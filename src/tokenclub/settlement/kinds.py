"""The kinds of amount an operator records by hand for a period.

Apart from `settlement/periods.py` so that the commands that name them (an option, a `--help`)
import no database code.
"""

from __future__ import annotations

from enum import StrEnum


class RecordKind(StrEnum):
    REVENUE = "revenue"
    COST = "cost"

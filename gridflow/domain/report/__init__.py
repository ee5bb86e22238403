"""The monthly evaluation report over archived steps (`gridflow report`), pure: no SQL, no I/O.

- `period`: a month or a run of days, the period before it, the weeks within it;
- `score`: the rates a report shows, and the ranking score's weights;
- `build`: the steps of a period counted by group, ranked, against the previous period, week by week,
  and the SLA breaches by district and category.
"""

from gridflow.domain.report.build import (
    COUNT_FIELDS,
    UNKNOWN,
    Change,
    Figures,
    Grouping,
    GroupRow,
    PeriodReport,
    Week,
    build_report,
)
from gridflow.domain.report.period import Period, PeriodError
from gridflow.domain.report.score import (
    CONTAINMENT_LEVELS,
    DEFAULT_WEIGHTS,
    RATES,
    SCORED,
    WEIGHTS_SETTING,
    Weights,
    WeightsError,
)

__all__ = [
    "CONTAINMENT_LEVELS",
    "COUNT_FIELDS",
    "DEFAULT_WEIGHTS",
    "RATES",
    "SCORED",
    "UNKNOWN",
    "WEIGHTS_SETTING",
    "Change",
    "Figures",
    "GroupRow",
    "Grouping",
    "Period",
    "PeriodError",
    "PeriodReport",
    "Week",
    "Weights",
    "WeightsError",
    "build_report",
]

"""Search attributes operators list incidents by in the Temporal UI. Never personal data."""

from __future__ import annotations

from temporalio.common import SearchAttributeKey

CATEGORY = SearchAttributeKey.for_keyword("GridflowCategory")
PRIORITY = SearchAttributeKey.for_keyword("GridflowPriority")
LEVEL = SearchAttributeKey.for_keyword("GridflowLevel")
STATUS = SearchAttributeKey.for_keyword("GridflowStatus")
DISTRICT = SearchAttributeKey.for_keyword("GridflowDistrict")
RULE = SearchAttributeKey.for_keyword("GridflowRule")

ALL = (CATEGORY, PRIORITY, LEVEL, STATUS, DISTRICT, RULE)

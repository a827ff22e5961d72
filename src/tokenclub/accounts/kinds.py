"""The kinds a partner's record takes: its status, its organisation and its tier.

Apart from `accounts/partners.py` so that the commands and pages that only name them (a
command's option type, a `--help`) import no database code.
"""

from __future__ import annotations

from enum import StrEnum


class PartnerStatus(StrEnum):
    APPLIED = "applied"
    APPROVED = "approved"
    REJECTED = "rejected"
    WITHDRAWN = "withdrawn"


class OrgType(StrEnum):
    MEDIA = "media"
    PUBLISHER = "publisher"
    UNIVERSITY = "university"
    ENTERPRISE = "enterprise"
    PUBLIC = "public"
    OTHER = "other"


class Tier(StrEnum):
    MEMBER = "member"
    CONTRIBUTOR = "contributor"

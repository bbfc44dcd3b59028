"""`python -m assistant feedback export`: every feedback item as CSV or JSON.

The fields follow the Open311 GeoReport v2 service request, so the items can be
read by tools that speak it. Open311 knows only `open` and `closed`; our own
status (new, answered, closed) is kept in the extra field `detailed_status`.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import sys
from typing import Any
from zoneinfo import ZoneInfo

from .districts import Gazetteer
from .feedback_admin import load_gazetteer
from .settings import Settings
from .store.db import Database
from .store.feedback import FeedbackItem, FeedbackStore, Status

FIELDS = ("service_request_id", "status", "status_notes", "service_name", "service_code",
          "description", "requested_datetime", "updated_datetime", "address",
          "detailed_status", "district_id", "reply_wanted")


def run(settings: Settings, args: argparse.Namespace) -> int:
    """Write the export to `args.output` or standard output."""
    db = Database(settings.database_url)
    try:
        db.create_all()
        items = FeedbackStore(db, settings.timezone).all_items()
    finally:
        db.dispose()
    gazetteer, zone = load_gazetteer(settings.knowledge_dir), ZoneInfo(settings.timezone)
    rows = [as_open311(item, _district_name(gazetteer, item.district_id), zone) for item in items]
    text = to_csv(rows) if args.format == "csv" else to_json(rows)
    if args.output:
        args.output.write_text(text, encoding="utf-8")
    else:
        sys.stdout.write(text)
    return 0


def as_open311(item: FeedbackItem, district_name: str, zone: ZoneInfo) -> dict[str, Any]:
    """One item as an Open311 service request, plus our own detail fields."""
    return {
        "service_request_id": item.reference,
        "status": "closed" if item.status == Status.CLOSED.value else "open",
        "status_notes": item.answer_text or "",
        "service_name": item.kind,
        "service_code": item.kind,
        "description": item.text,
        "requested_datetime": item.created_at.astimezone(zone).isoformat(timespec="seconds"),
        "updated_datetime": item.updated_at.astimezone(zone).isoformat(timespec="seconds"),
        "address": district_name,
        "detailed_status": item.status,
        "district_id": item.district_id or "",
        "reply_wanted": item.reply_wanted,
    }


def to_json(rows: list[dict[str, Any]]) -> str:
    return json.dumps(rows, ensure_ascii=False, indent=2) + "\n"


def to_csv(rows: list[dict[str, Any]]) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=FIELDS)
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue()


def _district_name(gazetteer: Gazetteer | None, district_id: str | None) -> str:
    """The Finnish (official) name; the bare id when the gazetteer no longer has it."""
    if not district_id:
        return ""
    district = gazetteer.get(district_id) if gazetteer is not None else None
    return district.fi if district else district_id

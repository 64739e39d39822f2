"""Raw payloads archived by content and quarantine rows that count repeats, instead of growing every cycle."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import sqlalchemy as sa

from core.settings import Settings
from ingestion.pipeline import fetch_source
from ingestion.providers import provider_config
from ingestion.sandbox.server import Fault
from storage.database import create_store_engine, upgrade
from storage.health import ApiHealthStore, QuarantinedRow, QuarantineStore
from storage.payload_archive import archive_payload
from storage.schema import price_quarantine


def archived_files(folder) -> list[str]:
    return sorted(p.name for p in folder.rglob("*") if p.is_file())


def test_archive__one_file_per_distinct_body_named_by_its_hash(tmp_path):
    junk = b"<html>maintenance</html>" * 1000
    first = archive_payload(tmp_path, "iea", junk, "/price/hourly")
    again = archive_payload(tmp_path, "iea", junk, "/price/other")
    other = archive_payload(tmp_path, "iea", junk + b"!", "/price/hourly")
    elsewhere = archive_payload(tmp_path, "entsoe", junk, "/api")
    assert first == again != other
    assert first == str(tmp_path / "iea" / f"{hashlib.sha256(junk).hexdigest()}.raw")
    names = archived_files(tmp_path)
    assert len(names) == 6  # three distinct (source, body): a .raw and a .meta each, no temporary left
    assert Path(first).read_bytes() == junk and Path(other).read_bytes() == junk + b"!"
    assert Path(first).with_suffix(".meta").read_text() == "endpoint: /price/hourly\n"  # the first sender's
    assert elsewhere.startswith(str(tmp_path / "entsoe"))


def test_quarantine__the_same_payload_again_counts_a_repeat_instead_of_a_row(store):
    quarantine = QuarantineStore(store.engine)
    payload = QuarantinedRow(source="iea", region="FR", reason="unparseable payload: not JSON", payload_ref="/r/a.raw")
    # the parser may word it differently next time: the archived payload is what makes it the same
    reworded = QuarantinedRow(source="iea", region="FR", reason="unparseable payload: bad JSON", payload_ref="/r/a.raw")
    other_region = QuarantinedRow(
        source="iea", region="BE", reason="unparseable payload: not JSON", payload_ref="/r/a.raw"
    )
    assert quarantine.add([payload]) == 1
    first = quarantine.read()
    assert quarantine.add([reworded]) == 0
    assert quarantine.add([payload, other_region]) == 1
    stored = quarantine.read()
    assert stored[["region", "reason", "repeat_count"]].values.tolist() == [
        ["FR", "unparseable payload: not JSON", 2],
        ["BE", "unparseable payload: not JSON", 0],
    ]
    assert stored.loc[0, "quarantined_at"] == first.loc[0, "quarantined_at"]  # when it first came
    assert stored.loc[0, "last_seen_at"] > first.loc[0, "last_seen_at"]
    assert stored.loc[1, "last_seen_at"] == stored.loc[1, "quarantined_at"]


def test_quarantine__a_rejected_row_again_counts_a_repeat(store):
    quarantine = QuarantineStore(store.engine)
    row = QuarantinedRow(
        source="entsoe", region="FR", ts=datetime(2024, 3, 1, 5, tzinfo=UTC), raw_value="9000.0", reason="too high"
    )
    assert [quarantine.add([row]) for _ in range(3)] == [1, 0, 0]
    stored = quarantine.read()
    assert len(stored) == 1 and stored.loc[0, "repeat_count"] == 2


def test_migration__rows_quarantined_before_start_with_no_repeat(store_url):
    engine = create_store_engine(store_url)
    upgrade(engine, "0002")
    quarantined_at = datetime(2026, 11, 30, 12, tzinfo=UTC)
    with engine.begin() as conn:
        conn.execute(
            sa.text(
                "INSERT INTO price_quarantine (fingerprint, source, reason, payload_ref, quarantined_at) "
                "VALUES ('f' , 'iea', 'unparseable payload', '/raw/iea/20261130T120000000000Z-abc.raw', :at)"
            ),
            {"at": quarantined_at if engine.dialect.name == "postgresql" else "2026-11-30 12:00:00.000000"},
        )
    assert upgrade(engine, "0003") == "0003"
    assert upgrade(engine, "0003") == "0003"  # a rerun of the upgrade is a no-op
    with engine.connect() as conn:
        row = conn.execute(sa.select(price_quarantine.c.repeat_count, price_quarantine.c.last_seen_at)).one()
    assert row.repeat_count == 0 and row.last_seen_at == quarantined_at
    engine.dispose()


def test_a_provider_stuck_on_the_same_junk_adds_one_file_and_one_row_per_region(store, sandbox, tmp_path):
    settings = Settings.from_env(
        {"EOPT_HOME": str(tmp_path), "EOPT_PRICING_SANDBOX_URL": sandbox.url, "EOPT_REGIONS": "FR"}
    )
    sandbox.set_faults({"iea": Fault(kind="malformed")})  # every answer cut in half, cycle after cycle
    config = provider_config("iea", settings)
    health, quarantine = ApiHealthStore(store.engine), QuarantineStore(store.engine)
    start = pd.Timestamp("2024-01-01", tz="UTC")
    cycles = 4
    for _ in range(cycles):  # the same request each cycle: the provider sends the same junk
        outcome = fetch_source(
            config, settings, start, start + pd.Timedelta(days=1), health=health, quarantine=quarantine
        )
        assert outcome.failed and outcome.rows.empty
    raw = sorted((tmp_path / "raw" / "iea").glob("*.raw"))
    assert len(raw) == 1 and len(archived_files(tmp_path / "raw")) == 2  # one body, one .meta
    stored = quarantine.read(source="iea")
    assert len(stored) == 1
    assert stored.loc[0, "payload_ref"] == str(raw[0]) and stored.loc[0, "repeat_count"] == cycles - 1
    calls = health.read(source="iea")
    assert calls["status"].tolist() == ["error"] * cycles  # each cycle still records its failure

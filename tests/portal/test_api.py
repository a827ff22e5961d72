"""The data API with the official `openai` SDK and plain httpx: chunked uploads, contributions,
per-document decisions, account, scopes and the errors of bad input."""

from __future__ import annotations

import hashlib
import io
import json
from pathlib import Path

import httpx
import openai
import pytest

from tests.ingest.fixtures import petitions, write_jsonl
from tests.portal.conftest import UPLOAD_LIMIT, Portal, make_partner
from tokenclub.corpus.dedup_index import DUPLICATE_REASON
from tokenclub.jobs.worker import work


def _client(portal: Portal, key: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=portal.url + "/v1", api_key=key, max_retries=0)


def _bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def test_sdk_chunked_upload_becomes_a_contribution_with_decisions(portal: Portal, tmp_path: Path) -> None:
    keys = make_partner(portal.db, "연합뉴스")
    rows = petitions(0, 30)
    rows.append(dict(max(rows, key=lambda r: len(json.dumps(r)))))  # the longest petition twice
    path = write_jsonl(tmp_path / "petitions.jsonl", rows)
    size = path.stat().st_size
    part_size = 32 * 1024
    assert size > 3 * part_size  # several parts
    client = _client(portal, keys.data)
    upload = client.uploads.upload_file_chunked(
        file=path,
        mime_type="application/jsonl",
        purpose="user_data",
        part_size=part_size,
        md5=hashlib.md5(path.read_bytes()).hexdigest(),
    )
    assert upload.status == "completed" and upload.bytes == size and upload.filename == "petitions.jsonl"
    assert upload.file is not None
    contribution_id = upload.file.id
    staged = [p for p in (portal.home / "staging" / upload.id).rglob("*") if p.is_file()]
    assert [p.name for p in staged] == ["petitions.jsonl"]  # the joined file; the parts are gone
    known = rows[0]["content"][:40].encode()
    assert known in path.read_bytes() and not any(known in p.read_bytes() for p in staged)  # sealed

    queued = httpx.get(f"{portal.url}/v1/contributions/{contribution_id}", headers=_bearer(keys.data))
    assert queued.status_code == 200 and queued.json()["status"] == "queued"
    assert queued.headers["x-request-id"].startswith("req_")

    assert work(portal.db, portal.worker, "test-worker", once=True) == 1
    done = httpx.get(f"{portal.url}/v1/contributions/{contribution_id}", headers=_bearer(keys.data)).json()
    assert done["status"] == "done", done
    receipt = done["receipt"]
    assert receipt["documents_seen"] == 31
    assert receipt["rejected"].get(DUPLICATE_REASON) == 1
    assert done["progress"]["documents_seen"] == 31
    assert done["progress"]["documents_accepted"] == receipt["documents_accepted"]

    first = httpx.get(
        f"{portal.url}/v1/contributions/{contribution_id}/decisions",
        params={"limit": 20},
        headers=_bearer(keys.data),
    ).json()
    assert first["total"] == 31 and len(first["data"]) == 20 and first["has_more"]
    rest = httpx.get(
        f"{portal.url}/v1/contributions/{contribution_id}/decisions",
        params={"limit": 20, "after": first["last_id"]},
        headers=_bearer(keys.data),
    ).json()
    decisions = first["data"] + rest["data"]
    assert [d["ordinal"] for d in decisions] == list(range(31)) and not rest["has_more"]
    duplicate = decisions[30]
    assert duplicate["decision"] == "rejected" and duplicate["reason"] == DUPLICATE_REASON
    assert sum(d["decision"] == "accepted" for d in decisions) == receipt["documents_accepted"]
    only_rejected = httpx.get(
        f"{portal.url}/v1/contributions/{contribution_id}/decisions",
        params={"rejected": "true"},
        headers=_bearer(keys.data),
    ).json()["data"]
    assert len(only_rejected) == sum(receipt["rejected"].values())

    account = httpx.get(f"{portal.url}/v1/account", headers=_bearer(keys.data)).json()
    assert account["balance"]["free_tokens_granted"] == receipt["free_tokens_granted"] > 0
    assert account["accepted_words"] == receipt["words"]
    listed = httpx.get(f"{portal.url}/v1/contributions", headers=_bearer(keys.data)).json()
    assert [c["id"] for c in listed["data"]] == [contribution_id]


def test_scopes_and_partners_keep_apart(portal: Portal) -> None:
    first = make_partner(portal.db, "경향신문")
    second = make_partner(portal.db, "한국일보")
    with pytest.raises(openai.PermissionDeniedError, match="no data scope"):
        _client(portal, first.inference).uploads.create(
            bytes=10, filename="a.txt", mime_type="text/plain", purpose="user_data"
        )
    denied = httpx.get(f"{portal.url}/v1/account", headers=_bearer(first.inference))
    assert denied.status_code == 403 and denied.json()["error"]["code"] == "insufficient_scope"
    assert denied.headers["x-request-id"].startswith("req_")
    assert httpx.get(f"{portal.url}/v1/account", headers=_bearer("tcsk-nope")).status_code == 401
    assert httpx.get(f"{portal.url}/v1/account").status_code == 401

    upload = _client(portal, first.data).uploads.create(
        bytes=5, filename="a.txt", mime_type="text/plain", purpose="user_data"
    )
    with pytest.raises(openai.NotFoundError, match=f"upload {upload.id} does not exist"):
        _client(portal, second.data).uploads.parts.create(upload_id=upload.id, data=b"hello")


def test_bad_uploads_are_refused_and_nothing_is_kept(portal: Portal) -> None:
    keys = make_partner(portal.db, "조선일보")
    client = _client(portal, keys.data)
    with pytest.raises(openai.BadRequestError, match="exceeds the upload size limit"):
        client.uploads.create(
            bytes=UPLOAD_LIMIT + 1, filename="big.zip", mime_type="application/zip", purpose="user_data"
        )
    with pytest.raises(openai.BadRequestError, match="filename"):
        client.uploads.create(bytes=3, filename="../etc/passwd", mime_type="text/plain", purpose="user_data")

    upload = client.uploads.create(bytes=8, filename="a.txt", mime_type="text/plain", purpose="user_data")
    staging = portal.home / "staging" / upload.id
    with pytest.raises(openai.BadRequestError, match="too large"):
        client.uploads.parts.create(upload_id=upload.id, data=b"123456789")
    assert list(staging.iterdir()) == []
    wrong = httpx.post(
        f"{portal.url}/v1/uploads/{upload.id}/parts",
        headers=_bearer(keys.data),
        files={"data": ("p", io.BytesIO(b"1234"))},
        data={"sha256": hashlib.sha256(b"4321").hexdigest()},
    )
    assert wrong.status_code == 400 and "checksum mismatch" in wrong.json()["error"]["message"]
    assert list(staging.iterdir()) == []
    good = httpx.post(
        f"{portal.url}/v1/uploads/{upload.id}/parts",
        headers={**_bearer(keys.data), "x-part-sha256": hashlib.sha256(b"1234").hexdigest()},
        content=b"1234",
    )
    assert good.status_code == 200 and good.json()["bytes"] == 4
    with pytest.raises(openai.BadRequestError, match="announced 8 bytes but the listed parts hold 4"):
        client.uploads.complete(upload_id=upload.id, part_ids=[good.json()["id"]])
    part = client.uploads.parts.create(upload_id=upload.id, data=b"5678")
    with pytest.raises(openai.BadRequestError, match="md5 mismatch"):
        client.uploads.complete(upload_id=upload.id, part_ids=[good.json()["id"], part.id], md5="0" * 32)
    with pytest.raises(openai.BadRequestError, match="is not a part"):
        client.uploads.complete(upload_id=upload.id, part_ids=["part_x"])
    done = client.uploads.complete(upload_id=upload.id, part_ids=[good.json()["id"], part.id])
    assert done.status == "completed" and done.file is not None
    with pytest.raises(openai.ConflictError, match="is completed"):
        client.uploads.parts.create(upload_id=upload.id, data=b"x")
    missing = httpx.post(f"{portal.url}/v1/uploads", headers=_bearer(keys.data), json={"filename": "a"})
    assert missing.status_code == 400 and missing.json()["error"]["message"].startswith("bytes")


def test_corrupt_archive_fails_its_contribution_with_the_reason(portal: Portal) -> None:
    keys = make_partner(portal.db, "중앙일보")
    client = _client(portal, keys.data)
    data = b"PK\x03\x04" + b"\x00garbage" * 50
    upload = client.uploads.create(
        bytes=len(data), filename="archive.zip", mime_type="application/zip", purpose="user_data"
    )
    part = client.uploads.parts.create(upload_id=upload.id, data=data)
    done = client.uploads.complete(upload_id=upload.id, part_ids=[part.id])
    assert done.file is not None
    work(portal.db, portal.worker, "test-worker", once=True)
    result = httpx.get(f"{portal.url}/v1/contributions/{done.file.id}", headers=_bearer(keys.data)).json()
    assert result["status"] == "failed"
    assert result["error"].startswith("nothing could be read from the upload: archive.zip")
    assert json.dumps(result["receipt"]["errors"]).count("archive.zip") >= 1


def test_an_interrupted_upload_resumes_from_the_parts_the_server_holds(portal: Portal) -> None:
    keys = make_partner(portal.db, "재개신문")
    client = _client(portal, keys.data)
    data = b"".join(
        json.dumps({"text": f"문서 {n}"}, ensure_ascii=False).encode() + b"\n" for n in range(300)
    )
    upload = client.uploads.create(
        bytes=len(data), filename="r.jsonl", mime_type="application/jsonl", purpose="user_data"
    )
    half = len(data) // 2
    client.uploads.parts.create(upload_id=upload.id, data=data[:half])
    # the client goes away; later it asks what arrived and sends the rest
    state = httpx.get(f"{portal.url}/v1/uploads/{upload.id}", headers=_bearer(keys.data)).json()
    assert state["received_bytes"] == half and [p["bytes"] for p in state["parts"]] == [half]
    assert state["parts"][0]["sha256"] == hashlib.sha256(data[:half]).hexdigest()
    rest = client.uploads.parts.create(upload_id=upload.id, data=data[state["received_bytes"] :])
    done = client.uploads.complete(upload_id=upload.id, part_ids=[state["parts"][0]["id"], rest.id])
    assert done.status == "completed"
    other = make_partner(portal.db, "엿보는신문")
    assert httpx.get(f"{portal.url}/v1/uploads/{upload.id}", headers=_bearer(other.data)).status_code == 404


def test_statements_are_listed_and_rendered_in_every_format(portal: Portal) -> None:
    from decimal import Decimal

    from tokenclub.ledger.pricing import PriceList
    from tokenclub.settlement.periods import month_bounds, open_period
    from tokenclub.settlement.settle import Terms, close_period

    keys = make_partner(portal.db, "정산신문")
    with portal.db.transaction() as session:
        open_period(session, "2025-01", *month_bounds("2025-01"))
        close_period(session, "2025-01", Terms(Decimal("0.3"), 1000, PriceList(2000, 8000)))
    listed = httpx.get(f"{portal.url}/v1/statements", headers=_bearer(keys.data)).json()
    assert [s["period"] for s in listed["data"]] == ["2025-01"]
    as_json = httpx.get(f"{portal.url}/v1/statements/2025-01", headers=_bearer(keys.data)).json()
    assert as_json["partner"] == keys.partner_id and as_json["partner_name"] == "정산신문"
    csv = httpx.get(
        f"{portal.url}/v1/statements/2025-01", params={"format": "csv"}, headers=_bearer(keys.data)
    )
    assert csv.headers["content-type"].startswith("text/csv") and "정산신문" in csv.content.decode(
        "utf-8-sig"
    )
    html = httpx.get(
        f"{portal.url}/v1/statements/2025-01", params={"format": "html"}, headers=_bearer(keys.data)
    )
    assert "정산신문" in html.text
    pdf = httpx.get(
        f"{portal.url}/v1/statements/2025-01", params={"format": "pdf"}, headers=_bearer(keys.data)
    )
    assert pdf.content.startswith(b"%PDF") and "attachment" in pdf.headers["content-disposition"]
    bad = httpx.get(
        f"{portal.url}/v1/statements/2025-01", params={"format": "docx"}, headers=_bearer(keys.data)
    )
    assert bad.status_code == 400 and bad.json()["error"]["message"].startswith("query.format")
    missing = httpx.get(f"{portal.url}/v1/statements/1999-01", headers=_bearer(keys.data))
    assert missing.status_code == 404
    no_scope = httpx.get(f"{portal.url}/v1/statements", headers=_bearer(keys.inference))
    assert no_scope.status_code == 403

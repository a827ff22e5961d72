"""The portal demo's partner story over real HTTP: apply, be approved, make a data key, upload
through the data API with the official SDK, and read the receipt and the balance.

Usage: demo_portal.py BASE_URL OPERATOR_EMAIL OPERATOR_PASSWORD UPLOAD_FILE TOKENCLUB_BIN
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import httpx
from openai import OpenAI

TOKEN = re.compile(r'name="csrf_token" value="([^"]+)"')
PARTNER = ("archive@hankook.example", "partner password 1")


def form_token(client: httpx.Client, path: str) -> str:
    found = TOKEN.search(client.get(path).text)
    assert found is not None, path
    return found.group(1)


def log_in(client: httpx.Client, email: str, password: str) -> None:
    token = form_token(client, "/portal/login")
    response = client.post("/portal/login", data={"csrf_token": token, "email": email, "password": password})
    assert response.status_code == 303, response.text


def main() -> None:
    base, op_email, op_password, upload_file, tokenclub = sys.argv[1:6]
    with httpx.Client(base_url=base) as applicant:
        token = form_token(applicant, "/portal/apply")
        applied = applicant.post(
            "/portal/apply",
            data={
                "csrf_token": token,
                "org_name": "한국신문 아카이브",
                "org_type": "media",
                "contact_name": "이기록",
                "email": PARTNER[0],
                "password": PARTNER[1],
                "data_description": "2019년 청원 기사 모음",
                "estimated_words": "150000000",
                "licence": "yes",
            },
        )
        print("== a newspaper applies through the public form:", applied.status_code)
    with httpx.Client(base_url=base) as operator:
        log_in(operator, op_email, op_password)
        page = operator.get("/portal/ops/applications").text
        partner_id = int(re.findall(r'id="partner-(\d+)"', page)[-1])
        token = form_token(operator, "/portal/ops/applications")
        operator.post(
            f"/portal/ops/applications/{partner_id}/decide",
            data={"csrf_token": token, "decision": "approve", "note": "환영합니다"},
        )
        print(f"== the operator approves partner {partner_id} with a note (audit trail)")
    with httpx.Client(base_url=base) as partner:
        log_in(partner, *PARTNER)
        token = form_token(partner, "/portal/partner/keys")
        page = partner.post(
            "/portal/partner/keys",
            data={"csrf_token": token, "name": "uploader", "scope": ["data", "account"]},
        ).text
        found = re.search(r'id="new-key">([^<]+)<', page)
        assert found is not None
        key = found.group(1)
        print("== the partner admin logs in and makes a key with the data and account scopes")
    client = OpenAI(base_url=base + "/v1", api_key=key)
    upload = client.uploads.upload_file_chunked(
        file=Path(upload_file), mime_type="application/jsonl", purpose="user_data", part_size=256 * 1024
    )
    assert upload.file is not None
    print(f"== uploaded {upload.bytes:,} bytes in parts with the openai SDK: contribution {upload.file.id}")
    subprocess.run([tokenclub, "worker", "--once"], check=True)
    headers = {"Authorization": f"Bearer {key}"}
    contribution = httpx.get(f"{base}/v1/contributions/{upload.file.id}", headers=headers).json()
    receipt = contribution["receipt"]
    print(f"== contribution {contribution['status']}: receipt")
    print(
        json.dumps(
            {k: receipt[k] for k in ("documents_seen", "documents_accepted", "rejected", "words", "tokens")},
            ensure_ascii=False,
            indent=2,
        )
    )
    rejected = httpx.get(
        f"{base}/v1/contributions/{upload.file.id}/decisions",
        params={"rejected": "true", "limit": 3},
        headers=headers,
    ).json()
    for decision in rejected["data"]:
        print(f"   rejected #{decision['ordinal']} ({decision['source']}): {decision['reason']}")
    account = httpx.get(f"{base}/v1/account", headers=headers).json()
    print("== balance:", json.dumps(account["balance"], ensure_ascii=False))


if __name__ == "__main__":
    main()

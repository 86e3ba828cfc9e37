"""A realistic guard policy for the guard tests, written into a temporary directory."""

from __future__ import annotations

import hashlib
from pathlib import Path

SUPPORT_KEY = "dg-support-test-key-0001"
BILLING_KEY = "dg-billing-test-key-0002"
CANARY = "AKIAQCANARY7EXAMPLE0"
MODEL = "support-model"
MODEL_DIGEST = "sha256:" + "cd" * 32


def sha(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


TOML = f"""
[guard]
cedar = "guard.cedar"
suspect_ceiling = "read"
destinations = ["status.example.org"]
learning_decisions = 3

[ceilings]
verified = "admin"
signed = "write"
unknown = "read"
tampered = "none"
flagged = "none"

[identities.support-bot]
key_sha256 = "{sha(SUPPORT_KEY)}"
canaries = ["{CANARY}"]

[identities.billing-bot]
key_sha256 = "{sha(BILLING_KEY)}"

[tools.lookup_order]
privilege = "read"

[tools.fetch_status]
privilege = "read"

[tools.update_ticket]
privilege = "write"
secret_patterns = ["(?i)internal-only"]

[tools.read_file]
privilege = "read"
paths = ["/srv/kb/*"]

[tools.send_email]
privilege = "egress"
destinations = ["example.com", "*.example.com"]

[tools.refund]
privilege = "write"
max_amount = 500
min_amount = 1

[tools.big_refund]
privilege = "write"
hold = true

[tools.rotate_credentials]
privilege = "admin"

[tools.store_secret]
privilege = "secret"
allow_secrets = true

[model_digests]
"{MODEL}" = "{MODEL_DIGEST}"

[response]
protected_texts = ["Refunds above five hundred euros need the duty manager's written approval."]
"""

CEDAR = """// support answers customers; billing refunds
permit (principal == Agent::"support-bot", action == Action::"call_tool", resource)
when {
  [Tool::"lookup_order", Tool::"fetch_status", Tool::"update_ticket", Tool::"read_file",
   Tool::"send_email", Tool::"rotate_credentials", Tool::"store_secret"].contains(resource)
};

permit (principal == Agent::"billing-bot", action == Action::"call_tool", resource)
when { [Tool::"lookup_order", Tool::"refund", Tool::"big_refund"].contains(resource) };

forbid (principal, action, resource == Tool::"refund")
when { context.has_amount && context.amount > 200 && context.provenance != "verified" };
"""


def write_policy(directory: Path, *, toml: str = TOML, cedar: str = CEDAR) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "guard.cedar").write_text(cedar, encoding="utf-8")
    path = directory / "guard.toml"
    path.write_text(toml, encoding="utf-8")
    return path

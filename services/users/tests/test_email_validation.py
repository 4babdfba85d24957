"""The email check's fast path answers exactly as email_validator does, on tricky addresses."""

from __future__ import annotations

import random

import pytest
from email_validator import EmailNotValidError, validate_email
from users_service.validation import _valid_domain, email_problem

DOMAINS = [
    "example.com", "EXAMPLE.COM", "mail.example.co.uk", "a-b.example.org", "localhost",
    "example.invalid", "printer.local", "host.test", "x.onion", "a.123", "123.com",
    "xn--bcher-kva.de", "ab--cd.com", "bücher.de", "-bad.com", "bad-.com", "a..b.com",
    "example.com.", ".example.com", "[192.0.2.1]", "x" * 63 + ".com", "x" * 64 + ".com",
    "under_score.com", "a.b", "com", "ex ample.com", "exa\u200bmple.com", "例え.jp",
    # Near the length limits: 254 in characters, in UTF-8 and in the IDNA form alike.
    ".".join(["例" * 7] * 9) + ".de", ".".join(["a" * 60] * 3) + ".com",
    ".".join(["b" * 61] * 3) + ".de", ".".join(["ü" * 20] * 6) + ".de",
]  # fmt: skip
LOCALS = [
    "ada", "Ada.Lovelace", "a+tag", "o'brien", "x" * 64, "x" * 65, "y" * 60, ".dot", "dot.", "a..b",
    '"quoted"', '"a b"', "a b", "ünï", "a@b", "", "a\\b", "#!$%&'*+/=?^_`{|}~-", "(c)",
]  # fmt: skip


def library_accepts(address: str) -> bool:
    try:
        validate_email(address, check_deliverability=False)
    except EmailNotValidError:
        return False
    return True


def random_address(rng: random.Random) -> str:
    alphabet = "abcXYZ019.-_+'\"@ ü例\u200b()[]\\"
    local = (
        rng.choice(LOCALS)
        if rng.random() < 0.5
        else "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 12)))
    )
    domain = (
        rng.choice(DOMAINS)
        if rng.random() < 0.7
        else "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 12)))
        + rng.choice(["", ".com", ".de", "."])
    )
    return f"{local}@{domain}"


@pytest.mark.slow
def test_the_verdict_is_email_validators_for_every_address_tried() -> None:
    rng = random.Random(20261201)
    addresses = [f"{local}@{domain}" for local in LOCALS for domain in DOMAINS]
    addresses += [random_address(rng) for _ in range(3000)]
    disagreements = [
        address
        for address in addresses
        if len(address) <= 254 and (email_problem(address) is None) != library_accepts(address)
    ]
    assert not disagreements, disagreements[:20]
    # The corpus holds both verdicts, and the fast path answered many of them itself.
    assert {library_accepts(a) for a in addresses} == {True, False}
    assert _valid_domain.cache_info().hits > 100


def test_a_bad_address_still_gets_email_validators_reason() -> None:
    problem = email_problem("ada@example.invalid")
    assert problem is not None
    assert problem.startswith("is not a valid email address: ")
    assert "special-use" in problem or "not valid" in problem

"""PII scrubbing replaces identifiers and leaves ordinary chat text alone."""

import pytest

from training.pii import scrub


@pytest.mark.parametrize(
    "text, expected",
    [
        ("mail me at ada.lovelace@example.com ok", "mail me at <email> ok"),
        ("call +44 20 7946 0958 tonight", "call <phone> tonight"),
        ("my number is 555-123-4567", "my number is <phone>"),
        ("(020) 7946 0958 is the office", "<phone> is the office"),
        ("+1\u00a0555\u00a0010\u00a00100", "<phone>"),
        ("card 4111 1111 1111 1111 thanks", "card <card> thanks"),
        ("card 4111-1111-1111-1111", "card <card>"),
        ("see https://example.org/x?y=1.", "see <url>."),
        ("www.example.com/path, then", "<url>, then"),
        ("both: bob@example.org and https://t.me/x", "both: <email> and <url>"),
    ],
)
def test_identifiers_become_placeholders(text, expected):
    assert scrub(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "see you at 21:43 😂",
        "born 13.06.2018, moved 2018-06-13",
        "I have 3 cats and 12 dogs",
        "the year 2019 was good",
        "score 120 to 98",
        "order 1234 5678",  # too short for a phone or card
        "4111 1111 1111 1112",  # fails the Luhn check: not a card (and too long for a phone)
        "café ça va ✨",
    ],
)
def test_ordinary_text_is_left_alone(text):
    assert scrub(text) == text

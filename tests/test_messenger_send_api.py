"""`SendAPI` against the fake Graph API on loopback: payloads, splitting, retries, timeouts, no token leaks."""

from __future__ import annotations

import logging
import time

import pytest
from conftest import free_port
from fake_graph import FakeGraph

from bot.adapters.messenger.send_api import RetryPolicy, SendAPI, SendError, quick_reply, split_text

TOKEN = "PAGE-TOKEN-5be1"


@pytest.fixture
def fake():
    with FakeGraph(token=TOKEN) as server:
        yield server


@pytest.fixture
def api(fake):
    client = SendAPI(fake.url, TOKEN, timeout=(1.0, 0.5), retry=RetryPolicy(attempts=3, backoff=0.01))
    yield client
    client.close()


def test_text_message_payload(api, fake):
    assert api.send_text("u1", "hello", [quick_reply("Alice", "PERSONA:Alice")]) == 1
    (call,) = fake.calls
    assert call.path == "/me/messages" and call.query == {"access_token": TOKEN}
    assert call.json == {"recipient": {"id": "u1"}, "messaging_type": "RESPONSE",
                         "message": {"text": "hello", "quick_replies": [
                             {"content_type": "text", "title": "Alice", "payload": "PERSONA:Alice"}]}}


def test_sender_actions(api, fake):
    for action in ("mark_seen", "typing_on", "typing_off"):
        api.sender_action("u1", action)
    assert fake.actions("u1") == ["mark_seen", "typing_on", "typing_off"]
    assert all("message" not in c.json and "messaging_type" not in c.json for c in fake.calls)


def test_long_reply_is_split_at_words_with_quick_replies_last(api, fake):
    words = [f"word{i:04d}" for i in range(450)]  # 4049 characters
    text = " ".join(words)
    assert api.send_text("u1", text, [quick_reply("Bob", "PERSONA:Bob")]) == 3
    parts = fake.texts("u1")
    assert all(0 < len(p) <= 2000 for p in parts)
    assert " ".join(parts).split() == words  # nothing lost, no word broken
    assert ["quick_replies" in c.json["message"] for c in fake.messages("u1")] == [False, False, True]


def test_split_text_edges():
    assert split_text("") == [] and split_text("   ") == []
    assert split_text("short") == ["short"]
    assert split_text("x" * 4500) == ["x" * 2000, "x" * 2000, "x" * 500]  # a word longer than a message
    cut = split_text("ab " * 3000)  # 9000 characters: beyond three messages the rest is cut
    assert len(cut) == 3 and cut[-1].endswith("…") and all(len(p) <= 2000 for p in cut)
    assert not cut[-1][:-1].endswith(" a")  # cut at a word boundary
    assert split_text("a\n" * 1500)[0].endswith("a")


def test_quick_reply_titles_are_cut_to_20():
    q = quick_reply("A very long persona name indeed", "PERSONA:A very long persona name indeed")
    assert len(q["title"]) == 20 and q["title"].endswith("…")
    assert q["payload"] == "PERSONA:A very long persona name indeed"


@pytest.mark.parametrize("status, error, headers", [
    (500, {"message": "An unknown error occurred", "type": "OAuthException", "code": 1}, {}),
    (503, None, {}),
    (429, {"message": "Too many calls", "type": "OAuthException", "code": 4}, {"Retry-After": "0"}),
    (400, {"message": "(#613) Calls to this api have exceeded the rate limit.", "type": "OAuthException",
           "code": 613}, {}),
    (400, {"message": "(#32) Page request limit reached", "type": "OAuthException", "code": 32}, {}),
])
def test_transient_failures_are_retried(api, fake, status, error, headers):
    fake.fail(times=2, status=status, error=error, headers=headers)
    api.send_text("u1", "hello")
    assert [c.status for c in fake.calls] == [status, status, 200]
    assert fake.texts("u1") == ["hello"]


def test_retries_give_up_with_a_safe_error(api, fake):
    fake.fail(times=10, status=500)
    with pytest.raises(SendError) as caught:
        api.send_text("u1", "the secret text")
    assert len(fake.calls) == 3
    assert caught.value.status == 500 and caught.value.code == 1
    assert "HTTP 500" in str(caught.value)
    assert TOKEN not in str(caught.value) and "secret text" not in str(caught.value)


def test_backoff_grows_and_honours_retry_after():
    policy = RetryPolicy(attempts=5, backoff=0.5, max_sleep=3.0)
    assert [policy.delay(i) for i in range(4)] == [0.5, 1.0, 2.0, 3.0]
    assert policy.delay(0, "2") == 2.0 and policy.delay(0, "600") == 3.0 and policy.delay(1, "soon") == 1.0


@pytest.mark.parametrize("error", [
    {"message": "(#100) No matching user found", "type": "OAuthException", "code": 100},
    {"message": "(#551) This person isn't available right now.", "type": "OAuthException", "code": 551},
])
def test_permanent_errors_are_not_retried(api, fake, error):
    fake.fail(times=1, status=400, error=error)
    with pytest.raises(SendError) as caught:
        api.send_text("u1", "hello")
    assert len(fake.calls) == 1 and caught.value.code == error["code"]


def test_wrong_token_is_graph_190_and_not_repeated(fake):
    api = SendAPI(fake.url, "WRONG-TOKEN-0000", retry=RetryPolicy(attempts=3, backoff=0.01))
    with pytest.raises(SendError) as caught:
        api.send_text("u1", "hello")
    assert caught.value.code == 190 and len(fake.calls) == 1
    assert "WRONG-TOKEN" not in str(caught.value)


def test_message_timeout_is_not_retried_but_actions_are_tried_once(api, fake):
    fake.fail(times=2, stall=1.5)
    started = time.monotonic()
    with pytest.raises(SendError, match="no answer within 0.5 s"):
        api.send_text("u1", "hello")
    with pytest.raises(SendError):
        api.sender_action("u1", "typing_on")
    assert time.monotonic() - started < 1.5 * 2  # each gave up at the client's timeout, once
    assert fake.wait_for(lambda f: len(f.calls) == 2, timeout=5)
    assert len(fake.calls) == 2  # the message was not sent a second time


def test_profile_timeouts_are_retried(fake):
    api = SendAPI(fake.url, TOKEN, timeout=(1.0, 0.3), retry=RetryPolicy(attempts=3, backoff=0.01))
    fake.fail(times=1, stall=1.0)
    api.set_profile({"get_started": {"payload": "GET_STARTED"}})
    assert fake.wait_for(lambda f: len(f.calls) == 2, timeout=5)


def test_unreachable_graph_api_is_retried_then_given_up(caplog):
    caplog.set_level(logging.DEBUG)
    url = f"http://127.0.0.1:{free_port()}/v21.0"  # nothing listens there
    api = SendAPI(url, TOKEN, timeout=(0.5, 0.5), retry=RetryPolicy(attempts=2, backoff=0.01))
    with pytest.raises(SendError, match="cannot reach the Graph API") as caught:
        api.send_text("u1", "hello")
    assert TOKEN not in str(caught.value)
    assert "retrying" in caplog.text
    assert TOKEN not in caplog.text


def test_token_is_not_logged_even_at_debug(api, fake, caplog):
    caplog.set_level(logging.DEBUG)
    api.send_text("u1", "hello")
    fake.fail(times=1, status=500)
    api.send_text("u1", "again")
    assert "/me/messages" in caplog.text  # urllib3 logged the request line...
    assert TOKEN not in caplog.text  # ...with the token masked
    assert "access_token=***" in caplog.text

"""Hostile requests against gunicorn: the webhooks and the console API must answer 4xx, never 5xx, never crash.

    python benchmarks/fuzz_webhooks.py [--json] [--requests N] [--seed S] [--concurrency C]

The same setup as benchmarks/bench_load.py (gunicorn from the Procfile, 2 workers, the fake Graph API and
Bot API, a tiny model) over a sqlite store, with the console on. N requests (default 2000), drawn by a
seeded generator, go to:
- `/messenger/webhook`: GET handshakes with junk parameters; POSTs with malformed JSON, wrong types anywhere
  in a valid body (entry not a list, messaging items that are strings, numbers or nested nulls, text as a
  number, a list or a huge string, mid as an object, sender missing, quick_reply payload as a list,
  attachments of the wrong shape, lone surrogates), bodies over TALKLIKE_MAX_BODY_BYTES (plain and
  chunked), missing / wrong / garbled signatures, valid signatures over garbage and non-UTF-8 bytes, wrong
  content types and methods;
- `/telegram/webhook`: wrong or missing secrets, updates with wrong types, huge text, unknown update kinds,
  entities with out-of-range offsets, chat ids as strings, ...; most carry the right secret, so they reach
  python-telegram-bot's handlers in the background;
- `/api/chat`, `/api/reset`, `/api/simulate`, `/api/transcript`, `/api/personas` and a few other paths;
- a few raw, malformed HTTP requests over a socket.
Figures: counts per status code (0: no answer), 5xx (must be 0), auth_bypass (a request with a bad
signature or secret answered 2xx: must be 0), worker pids before and after (from the master's
/proc/<pid>/task/<pid>/children, sampled through the run) and worker restarts, gunicorn's "WORKER TIMEOUT" /
"exited with code" / "Worker exiting" lines, exceptions the app logged (by message, with the last line of
one traceback: handled, but each is a bug report), and whether /readyz and a normal Messenger message and
Telegram message are still answered afterwards. Exit status 1 on any 5xx, auth bypass, crash or restart,
or when the server no longer answers.
"""

from __future__ import annotations

import argparse
import json
import random
import socket
import string
import sys
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import requests

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_load import (  # noqa: E402
    APP_SECRET,
    CONSOLE_TOKEN,
    FB_HEADER,
    TG_HEADER,
    TG_SECRET,
    VERIFY,
    Harness,
    facebook_json,
    message,
    message_event,
    private_chat,
    sign,
    user,
    webhook,
)

MAX_BODY = 1_000_000  # TALKLIKE_MAX_BODY_BYTES's default, which the server runs with


@dataclass
class Probe:
    """One hostile request: what to send, and what kind of request it is (for the figures)."""

    kind: str
    method: str
    path: str
    body: bytes | None = None
    headers: dict = field(default_factory=dict)
    params: dict | list | None = None
    chunked: bool = False  # send the body with Transfer-Encoding: chunked (no Content-Length)
    bad_credentials: bool = False  # must never be answered 2xx
    raw: bytes | None = None  # a whole raw HTTP request, sent over a socket


# --- junk ------------------------------------------------------------------------------------------------
WEIRD_STRINGS = ["", " ", "\x00", "\ud800", "\udfff", "é/ok", "\u202e\u200b", "🙂" * 3, "<script>alert(1)</script>",
                 "../../etc/passwd", "%s%n%x", "null", "NaN", "\\u0000", "a" * 300, "/persona", "/persona \ud83d",
                 "/forget", "/reset", "/help", "PERSONA:", "PERSONA:Alice", "PERSONA:\ud800", "GET_STARTED", "/start",
                 "@talklike_test_bot", "/say@talklike_test_bot", "/temperature 99", "/temperature nan", "\n" * 50]


def junk(rng: random.Random, depth: int = 0):
    """Any JSON value, with a taste for the ones that break parsers."""
    roll = rng.random()
    if depth > 3 or roll < 0.45:
        return rng.choice([None, True, False, 0, -1, 1, 2**31, -(2**63), 2**70, 1e308, -0.0, 3.5, float("nan"),
                           float("inf"), rng.randrange(-10**6, 10**6), rng.choice(WEIRD_STRINGS),
                           "".join(rng.choice(string.printable) for _ in range(rng.randrange(0, 40)))])
    if roll < 0.7:
        return [junk(rng, depth + 1) for _ in range(rng.randrange(0, 5))]
    keys = ["id", "text", "mid", "type", "offset", "length", "payload", "chat", "from", "message", "entry",
            "messaging", "sender", "update_id", "", "\ud800", "__proto__"]
    return {rng.choice(keys): junk(rng, depth + 1) for _ in range(rng.randrange(0, 5))}


def mutate(rng: random.Random, value, times: int = 1):
    """`value` (a JSON tree) with `times` random spots replaced by junk, deleted, or wrapped."""
    for _ in range(times):
        spots = list(_spots(value))
        if not spots:
            return junk(rng)
        parent, key = rng.choice(spots)
        action = rng.random()
        if action < 0.55:
            parent[key] = junk(rng)
        elif action < 0.7 and isinstance(parent, dict):
            del parent[key]
        elif action < 0.85:
            parent[key] = [parent[key]] if rng.random() < 0.5 else {"value": parent[key]}
        else:
            parent[key] = rng.choice([None, "", [], {}, [None], {"": None}])
    return value


def _spots(value, parent=None, key=None):
    if parent is not None:
        yield parent, key
    if isinstance(value, dict):
        for k, v in value.items():
            yield from _spots(v, value, k)
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from _spots(v, value, i)


def dumps(rng: random.Random, value) -> bytes:
    """JSON as various clients write it (Facebook's escaping, plain UTF-8; lone surrogates stay escaped)."""
    if rng.random() < 0.5:
        return facebook_json(value)
    try:
        return json.dumps(value, ensure_ascii=False).encode("utf-8", "surrogatepass")
    except ValueError:
        return json.dumps(value).encode()


# --- Messenger -------------------------------------------------------------------------------------------
def messenger_body(rng: random.Random) -> dict:
    """A valid-looking webhook body to break: messages, quick replies, attachments, postbacks, reads."""
    psid = f"fz{rng.randrange(10**6)}"
    kind = rng.randrange(5)
    if kind == 0:
        event = message_event(psid, rng.choice(WEIRD_STRINGS + ["hello there"]), mid=f"m.fz.{rng.getrandbits(48)}")
    elif kind == 1:
        event = message_event(psid, "pick", quick_reply=rng.choice(["PERSONA:Bob", "RESET", "HELP", "x"]),
                              mid=f"m.fz.{rng.getrandbits(48)}")
    elif kind == 2:
        event = message_event(psid, None, mid=f"m.fz.{rng.getrandbits(48)}",
                              attachments=[{"type": "image", "payload": {"url": "https://example.com/a.png"}}])
    elif kind == 3:
        event = {"sender": {"id": psid}, "recipient": {"id": "PAGE1"}, "timestamp": int(time.time() * 1000),
                 "postback": {"title": "Get Started", "payload": rng.choice(["GET_STARTED", "PERSONAS", "FORGET"])}}
    else:
        event = {"sender": {"id": psid}, "recipient": {"id": "PAGE1"}, "timestamp": 1,
                 "read": {"watermark": 1}, "delivery": {"mids": ["x"]}}
    return webhook(*[event] * rng.choice([1, 1, 1, 2]))


def messenger_shapes(rng: random.Random) -> dict | list | str | int | None:
    """The wrong types the brief names, one at a time."""
    body = messenger_body(rng)
    entry, event = body["entry"][0], body["entry"][0]["messaging"][0]
    msg = event.get("message", {})
    choice = rng.randrange(16)
    if choice == 0:
        body["entry"] = rng.choice([{}, "entry", 5, None, {"0": entry}])
    elif choice == 1:
        entry["messaging"] = [rng.choice(["text", 7, None, [None], [[None]], {"a": None}, 1.5, True])]
    elif choice == 2:
        msg["text"] = rng.choice([5, 2**80, [1, "a"], {"t": "x"}, None, True, "x" * rng.choice([5000, 300_000])])
    elif choice == 3:
        msg["mid"] = rng.choice([{"id": "x"}, ["m"], 12, None, True, ""])
    elif choice == 4:
        event.pop("sender", None)
    elif choice == 5:
        event["sender"] = rng.choice([None, "psid", 12, [], {"id": None}, {"id": {"x": 1}}, {"id": ["a"]},
                                      {"id": "\ud800"}, {"id": 2**70}, {"id": ""}, {"id": True}])
    elif choice == 6:
        msg["quick_reply"] = rng.choice([{"payload": ["PERSONA:Bob"]}, {"payload": {"x": 1}}, "PERSONA:Bob",
                                         [{"payload": "RESET"}], {"payload": None}, {"payload": 5}])
    elif choice == 7:
        msg["attachments"] = rng.choice([{"type": "image"}, "image", [None], [1, 2], [{"type": None}],
                                         [{"type": ["a"]}], [{"type": {"t": 1}}], [{}], 5])
    elif choice == 8:
        event["timestamp"] = rng.choice(["now", None, [], 1e308, -1, 2**80, float("nan"), True])
    elif choice == 9:
        event["postback"] = rng.choice([{"payload": ["x"]}, {"payload": None, "title": 5}, "GET_STARTED",
                                        {"payload": "PERSONA:" + "B" * 5000}, {"mid": {"x": 1}, "payload": "HELP"}])
        event.pop("message", None)
    elif choice == 10:
        body["object"] = rng.choice(["user", None, 5, ["page"], "PAGE", {"page": 1}])
    elif choice == 11:
        return rng.choice([[], [body], "page", 5, None, True, [[[[[]]]]]])
    elif choice == 12:
        msg["is_echo"] = rng.choice(["yes", [], None, 1])
    elif choice == 13:
        msg["sticker_id"] = rng.choice([1, "s", None, {}])
        msg.pop("text", None)
    elif choice == 14:
        event["message"] = rng.choice(["hi", 5, None, [], ["text"]])
    else:
        return mutate(rng, body, rng.randrange(1, 5))
    return body


def messenger_probe(rng: random.Random) -> Probe:
    path = "/messenger/webhook"
    roll = rng.random()
    if roll < 0.08:  # the handshake
        params = {}
        for name in rng.sample(["hub.mode", "hub.verify_token", "hub.challenge", "hub.x", ""], rng.randrange(0, 5)):
            params[name] = rng.choice(["subscribe", VERIFY, VERIFY + "x", "", "é\ud7ff", "%ff", "x" * 3000,
                                       "<b>1</b>", str(rng.randrange(10**9))])
        if rng.random() < 0.3:
            return Probe("fb_verify", "GET", path + "?" + rng.choice(["hub.mode=subscribe&hub.challenge=%ff%fe",
                                                                     "hub.mode=subscribe&hub.verify_token=%00",
                                                                     "&&&==&", "hub.challenge=" + "%" * 10,
                                                                     f"hub.mode=subscribe&hub.verify_token={VERIFY}"
                                                                     "&hub.challenge=%C0%AF"]))
        return Probe("fb_verify", "GET", path, params=params)
    if roll < 0.12:
        return Probe("fb_method", rng.choice(["PUT", "DELETE", "PATCH", "OPTIONS", "HEAD"]), path, b"{}")
    if roll < 0.55:  # signed, shaped wrongly
        raw = dumps(rng, messenger_shapes(rng))
        return Probe("fb_signed_shapes", "POST", path, raw, _fb_headers(rng, raw))
    if roll < 0.65:  # signed garbage
        raw = rng.choice([b"", b"{", b"{\"object\": \"page\", ", b"\xff\xfe\x00{}", b"\x80\x81\x82", b"null", b"[]",
                          b"\"page\"", b"{\"object\": \"page\", \"entry\": [" * 2000, b"[" * 100_000,
                          b"{\"object\":\"page\",\"entry\":[{\"messaging\":[{\"sender\":{\"id\":\"\xff\"}}]}]}",
                          rng.randbytes(rng.randrange(1, 2000)), b"{\"a\":" * 5000 + b"1" + b"}" * 5000,
                          b"{\"object\":\"page\",\"entry\":[],\"entry\":5}", b"1e99999", b"NaN", b"-Infinity"])
        return Probe("fb_signed_garbage", "POST", path, raw, _fb_headers(rng, raw))
    if roll < 0.72:  # over the limit, or just under it with one huge field
        size = rng.choice([MAX_BODY + 1, MAX_BODY + 10_000, int(MAX_BODY * 1.3), MAX_BODY - 200])
        body = webhook(message_event(f"fz{rng.randrange(10**6)}", "x", mid=f"m.big.{rng.getrandbits(48)}"))
        raw = facebook_json(body)
        text = "y" * max(0, size - len(raw))
        body["entry"][0]["messaging"][0]["message"]["text"] = text
        raw = facebook_json(body)
        return Probe("fb_big", "POST", path, raw, _fb_headers(rng, raw), chunked=rng.random() < 0.4)
    # bad credentials: none may ever be answered 2xx
    raw = dumps(rng, messenger_body(rng) if rng.random() < 0.7 else messenger_shapes(rng))
    good = sign(APP_SECRET, raw)
    header = rng.choice([None, "", "sha256=", good[:-1], good[:-1] + ("0" if good[-1] != "0" else "1"),
                         "sha1=" + good[7:47], good.replace("sha256=", "SHA256="), "sha256=" + "z" * 64,
                         good + "00", "sha256=" + good[8:].upper() + "A", sign("another-secret", raw),
                         "sha256=" + "é" * 64, "sha256 = " + good[7:], good[7:], "sha256=sha256=" + good[7:],
                         "sha256=" + "0" * 64])
    headers = {"Content-Type": rng.choice(["application/json", "text/plain", None])}
    if header is not None:
        headers[FB_HEADER] = header.encode("utf-8") if not header.isascii() else header
    if rng.random() < 0.15:  # the right signature of a different body
        headers[FB_HEADER] = sign(APP_SECRET, raw + b" ")
    return Probe("fb_bad_signature", "POST", path, raw, _clean(headers), bad_credentials=True)


def _fb_headers(rng: random.Random, raw: bytes) -> dict:
    content_type = rng.choice(["application/json"] * 6 + ["text/plain", "application/x-www-form-urlencoded",
                                                         "multipart/form-data; boundary=x", None,
                                                         "application/json; charset=latin-1"])
    return _clean({"Content-Type": content_type, FB_HEADER: sign(APP_SECRET, raw)})


def _clean(headers: dict) -> dict:
    return {k: v for k, v in headers.items() if v is not None}


# --- Telegram --------------------------------------------------------------------------------------------
def telegram_body(rng: random.Random) -> dict:
    chat_id = rng.randrange(1, 10**9)
    u = user(chat_id, rng.choice(["Dana", "Alice", "\ud800", "", "Bob"]), username=rng.choice([None, "dana", "Alice"]))
    text = rng.choice(WEIRD_STRINGS + ["hello", "x" * rng.choice([4097, 20_000, 200_000])])
    chat = private_chat(u) if rng.random() < 0.7 else {"id": -chat_id, "type": rng.choice(["group", "supergroup"]),
                                                       "title": "G"}
    msg = message(chat, u, text, message_id=rng.randrange(1, 10**6))
    return {"update_id": rng.randrange(1, 2**31), "message": msg}


def telegram_shapes(rng: random.Random):
    body = telegram_body(rng)
    msg = body["message"]
    choice = rng.randrange(15)
    if choice == 0:
        body["update_id"] = rng.choice(["7", None, 1.5, True, [], {}, -5, 2**70, "x", float("nan")])
    elif choice == 1:
        msg["chat"]["id"] = rng.choice([str(msg["chat"]["id"]), "abc", None, [], 1.5, 2**70, True])
    elif choice == 2:
        msg["text"] = rng.choice([5, None, ["a"], {"t": 1}, True, "z" * 500_000])
    elif choice == 3:
        text = msg.get("text") or "hi"
        msg["text"] = "@talklike_test_bot " + text if isinstance(text, str) else text
        msg["entities"] = [{"type": rng.choice(["mention", "bot_command", "text_mention", "url", "nope", None, 5]),
                            "offset": rng.choice([0, -5, 10**9, 2**70, "0", None, 3.5]),
                            "length": rng.choice([0, -1, 10**9, 18, "18", None]),
                            **({"user": junk(rng)} if rng.random() < 0.3 else {})}
                           for _ in range(rng.randrange(1, 4))]
    elif choice == 4:
        kind = rng.choice(["edited_message", "channel_post", "poll", "business_message", "message_reaction",
                           "chat_boost", "purchased_paid_media", "x_unknown_kind", "inline_query", "shipping_query"])
        body[kind] = body.pop("message") if rng.random() < 0.5 else junk(rng)
    elif choice == 5:
        body["callback_query"] = {"id": "1", "from": msg["from"], "chat_instance": "1",
                                  "data": rng.choice(["persona:Bob", "persona:\ud800", "persona:", 5, None]),
                                  "message": rng.choice([msg, None, "m", {"message_id": 1}])}
        body.pop("message")
    elif choice == 6:
        body["my_chat_member"] = mutate(rng, {"chat": msg["chat"], "from": msg["from"], "date": 1,
                                              "old_chat_member": {"user": msg["from"], "status": "left"},
                                              "new_chat_member": {"user": msg["from"], "status": "member"}})
        body.pop("message")
    elif choice == 7:
        msg.pop(rng.choice(["chat", "from", "date", "message_id"]), None)
    elif choice == 8:
        msg["sticker"] = rng.choice([{"file_id": "a", "file_unique_id": "b", "type": "regular", "width": 1,
                                      "height": 1, "is_animated": False, "is_video": False, "emoji": "🙂"},
                                     {"emoji": 5}, "sticker", None])
        msg.pop("text", None)
    elif choice == 9:
        msg["photo"] = rng.choice([[], [{"file_id": "a"}], "p", [None]])
        msg.pop("text", None)
    elif choice == 10:
        msg["reply_to_message"] = rng.choice([msg.copy(), {"message_id": 1}, "r", None,
                                              {"message_id": 2, "date": 1, "chat": msg["chat"],
                                               "from": {"id": 123456789, "is_bot": True, "first_name": "B"}}])
    elif choice == 11:
        msg["migrate_to_chat_id"] = rng.choice([5, "x", None, -1001])
        msg.pop("text", None)
    elif choice == 12:
        msg["message_thread_id"], msg["is_topic_message"] = rng.choice([(5, True), ("5", "yes"), (None, True),
                                                                        (2**70, True)])
    elif choice == 13:
        return rng.choice([[], [body], "update", 5, None, True])
    else:
        return mutate(rng, body, rng.randrange(1, 5))
    return body


def telegram_probe(rng: random.Random) -> Probe:
    path = "/telegram/webhook"
    roll = rng.random()
    if roll < 0.12:
        secret = rng.choice([None, "", TG_SECRET + "x", TG_SECRET[:-1], TG_SECRET.upper(), TG_SECRET + "\t!",
                             "é" + TG_SECRET, "x" * 5000])
        headers = {"Content-Type": "application/json"}
        if secret is not None:
            headers[TG_HEADER] = secret.encode("utf-8") if not secret.isascii() else secret
        return Probe("tg_bad_secret", "POST", path, dumps(rng, telegram_body(rng)), headers, bad_credentials=True)
    if roll < 0.16:
        return Probe("tg_method", rng.choice(["GET", "PUT", "DELETE", "PATCH", "OPTIONS", "HEAD"]), path, b"{}",
                     {TG_HEADER: TG_SECRET})
    headers = {TG_HEADER: TG_SECRET, "Content-Type": rng.choice(["application/json"] * 5 + [None, "text/plain"])}
    if roll < 0.26:
        raw = rng.choice([b"", b"{", b"\xff\xfe", b"[" * 100_000, b"null", rng.randbytes(rng.randrange(1, 500)),
                          b"{\"update_id\": 1" + b" " * (MAX_BODY + 10) + b"}", b"{\"update_id\": 1e999}",
                          b"{\"update_id\": NaN}"])
        return Probe("tg_garbage", "POST", path, raw, _clean(headers), chunked=len(raw) > MAX_BODY and rng.random() < 0.5)
    return Probe("tg_shapes", "POST", path, dumps(rng, telegram_shapes(rng)), _clean(headers))


# --- the console API, other paths, raw HTTP --------------------------------------------------------------
def console_probe(rng: random.Random) -> Probe:
    roll = rng.random()
    signed_in = {"Authorization": f"Bearer {CONSOLE_TOKEN}"}  # the console of a public app needs its token
    if roll < 0.05:  # a stranger: no token (wrong ones would lock this client out for a minute)
        return Probe("api_stranger", rng.choice(["GET", "POST"]), rng.choice(["/api/personas", "/api/chat", "/",
                                                                            "/api/status", "/api/transcript"]),
                     bad_credentials=True)
    if roll < 0.15:
        if rng.random() < 0.2:
            return Probe("api_transcript", "GET", "/api/transcript?conversation=" + rng.choice(
                ["%ED%A0%80", "%ff%fe", "%00", "a&conversation=b", "%"]), headers=signed_in)
        params = {"conversation": rng.choice(["ok1", "", "x" * 100, "../x", "a b", "é", "\x00"])}
        return Probe("api_transcript", "GET", "/api/transcript", params=params if rng.random() < 0.8 else None,
                     headers=signed_in)
    if roll < 0.25:
        return Probe("api_other", rng.choice(["GET", "POST", "PUT", "DELETE"]),
                     rng.choice(["/api/personas", "/api/nope", "/", "/console/static/../../etc/passwd", "/healthz",
                                 "/readyz", "/api/chat", "/%ff", "/api/" + "x" * 3000, "/messenger", "/telegram"]),
                     headers=signed_in)
    path = rng.choice(["/api/chat", "/api/chat", "/api/reset", "/api/simulate"])
    body = {"conversation": rng.choice(["fz" + str(rng.randrange(100)), "", None, 5, "x" * 65, "a/b"]),
            "message": rng.choice(WEIRD_STRINGS + ["hello", 5, None, ["x"], "m" * 4001]),
            "persona": rng.choice(["Alice", "Bob", None, "Nobody", 5, ["Alice"], ""]),
            "temperature": rng.choice([0.7, 0, 5, 5.01, -1, "1", None, float("nan"), float("inf"), True, 2**70]),
            "personas": rng.choice([["Alice", "Bob"], [], ["Alice"], "Alice", None, ["Nobody", 5], ["Bob"] * 50]),
            "turns": rng.choice([1, 2, 0, 21, -1, "2", None, 2.5, True]),
            "seed": rng.choice([1, None, "s", -1, 2**70, 1.5])}
    body = {k: v for k, v in body.items() if rng.random() < 0.8}
    value = mutate(rng, body, 1) if rng.random() < 0.3 else body
    raw = dumps(rng, value) if rng.random() < 0.9 else rng.choice([b"{", b"\xff", b"", b"[]"])
    content_type = rng.choice(["application/json"] * 6 + [None, "text/plain", "application/json; charset=utf-16"])
    return Probe("api_post", "POST", path, raw, _clean({"Content-Type": content_type, **signed_in}))


RAW_REQUESTS = [
    b"GARBAGE\r\n\r\n",
    b"POST /messenger/webhook HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n",
    b"POST /messenger/webhook HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n",
    b"POST /telegram/webhook HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n",
    b"POST /telegram/webhook HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    b"GET /" + b"a" * 10_000 + b" HTTP/1.1\r\nHost: x\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + b"b" * 20_000 + b"\r\n\r\n",
    b"GET /readyz HTTP/9.9\r\nHost: x\r\n\r\n",
    b"POST /messenger/webhook HTTP/1.1\r\nHost: x\r\nX-Hub-Signature-256: \xff\xfe\r\nContent-Length: 2\r\n\r\n{}",
    b"POST /telegram/webhook HTTP/1.1\r\nHost: x\r\nX-Telegram-Bot-Api-Secret-Token: \xff\r\nContent-Length: 2\r\n\r\n{}",
    b"GET /messenger/webhook?hub.mode=subscribe&hub.verify_token=\xff&hub.challenge=1 HTTP/1.1\r\nHost: x\r\n\r\n",
    b"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03" + b"\x00" * 40,  # a TLS ClientHello on the plain port
]


def raw_probe(rng: random.Random) -> Probe:
    return Probe("raw_http", "RAW", "-", raw=rng.choice(RAW_REQUESTS))


def draw(rng: random.Random) -> Probe:
    roll = rng.random()
    if roll < 0.45:
        return messenger_probe(rng)
    if roll < 0.83:
        return telegram_probe(rng)
    if roll < 0.985:
        return console_probe(rng)
    return raw_probe(rng)


# --- sending ---------------------------------------------------------------------------------------------
_local = threading.local()


def send(base: str, probe: Probe) -> int:
    """The status the server answered (0: no answer, the connection closed or timed out, twice: a kept-alive
    connection the server had just closed is tried once more on a fresh one)."""
    if probe.raw is not None:
        return send_raw(base, probe.raw)
    status = _send(base, probe)
    return _send(base, probe) if status == 0 else status


def _send(base: str, probe: Probe) -> int:
    session = getattr(_local, "session", None)
    if session is None:
        session = _local.session = requests.Session()
    data = probe.body
    if probe.chunked and data is not None:
        body = data
        data = (body[i:i + 65536] for i in range(0, len(body), 65536))
    try:
        response = session.request(probe.method, base + probe.path, data=data, headers=probe.headers,
                                   params=probe.params, timeout=30, allow_redirects=False)
        return response.status_code
    except requests.RequestException:
        _local.session = None  # the server may have closed the connection mid-body (413): start afresh
        return 0
    except ValueError:  # a header the client library itself refuses to send
        return -1


def send_raw(base: str, raw: bytes) -> int:
    host, port = base.removeprefix("http://").split(":")
    try:
        with socket.create_connection((host, int(port)), timeout=5) as s:
            s.sendall(raw)
            s.shutdown(socket.SHUT_WR)
            answer = s.recv(64)
    except OSError:
        return 0
    try:
        return int(answer.split(b" ", 2)[1]) if answer.startswith(b"HTTP/") else 0
    except (IndexError, ValueError):
        return 0


def after_check(h: Harness) -> dict:
    """Is the server still itself: ready, and answering a normal message on both platforms?"""
    ready = all(h.ready() for _ in range(6))
    psid, chat_id = "after-fuzz-user", 424242
    raw = facebook_json(webhook(message_event(psid, "hello after the storm", mid="m.after.fuzz")))
    fb_status = send(h.base, Probe("after", "POST", "/messenger/webhook", raw,
                                   {"Content-Type": "application/json", FB_HEADER: sign(APP_SECRET, raw)}))
    u = user(chat_id, "Dana", username=None)
    tg_raw = json.dumps({"update_id": 2**31 + 7, "message": message(private_chat(u), u, "hello after the storm")}).encode()
    tg_status = send(h.base, Probe("after", "POST", "/telegram/webhook", tg_raw,
                                   {"Content-Type": "application/json", TG_HEADER: TG_SECRET}))
    fb_reply = h.graph.wait_for(lambda f: len(f.texts(psid)) >= 1, timeout=60)
    try:
        h.bot_api.wait_for("sendMessage", 1, lambda c: str(c.get("chat_id")) == str(chat_id), timeout=60)
        tg_reply = True
    except AssertionError:
        tg_reply = False
    return {"readyz": ready, "messenger_ack": fb_status, "messenger_reply": bool(fb_reply),
            "telegram_ack": tg_status, "telegram_reply": tg_reply}


def summarize_exceptions(lines: list[str]) -> dict:
    """Logged exceptions by message, with the last line of one traceback and the logger."""
    found: dict[str, dict] = {}
    for line in lines:
        try:
            entry = json.loads(line)
        except ValueError:
            entry = {"msg": line[:120]}
        exc = entry.get("exc") or ""
        error = exc.strip().splitlines()[-1][:300] if exc else ""
        key = f"{entry.get('logger', '?')}: {entry.get('msg', entry.get('message', '?'))} [{error.split(':')[0]}]"
        item = found.setdefault(key, {"count": 0, "error": ""})
        item["count"] += 1
        if exc and not item["error"]:
            item["error"] = error
            item["where"] = [ln.strip()[:200] for ln in exc.splitlines() if ln.strip().startswith("File ")][-2:]
    return found


def run(n: int, seed: int, concurrency: int) -> dict:
    rng = random.Random(seed)
    probes = [draw(rng) for _ in range(n)]
    statuses: Counter = Counter()
    by_kind: dict[str, Counter] = {}
    five_xx: list[str] = []
    bypass: list[str] = []
    lock = threading.Lock()
    with Harness(workers=2, threads=16, store="sqlite", console=True, gunicorn_log_level="info") as h:
        pids_before = sorted(h.worker_pids())

        def one(i: int) -> None:
            probe = probes[i]
            status = send(h.base, probe)
            with lock:
                statuses[status] += 1
                by_kind.setdefault(probe.kind, Counter())[status] += 1
                if status >= 500:
                    five_xx.append(f"#{i} {probe.kind} {probe.method} {probe.path} -> {status}: "
                                   f"{(probe.body or probe.raw or b'')[:200]!r}")
                if probe.bad_credentials and 200 <= status < 300:
                    bypass.append(f"#{i} {probe.kind}: {probe.headers}")

        started = time.monotonic()
        with ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="fuzz") as pool:
            list(pool.map(one, range(n)))
        elapsed = time.monotonic() - started
        # let the background finish what the fuzz queued, then check the server is still itself
        time.sleep(3.0)
        after = after_check(h)
        pids_after = sorted(h.worker_pids())
        restarts = h.restarts()
        log = h.log()
        trouble = [ln[:300] for ln in log.splitlines() if "WORKER TIMEOUT" in ln or "exited with code" in ln
                   or "Worker exiting" in ln or "was sent" in ln]
        exceptions = summarize_exceptions(h.errors_logged())
        alive = h.proc.poll() is None
    return {
        "requests": n, "seed": seed, "concurrency": concurrency, "elapsed_s": round(elapsed, 1),
        "statuses": {str(k): v for k, v in sorted(statuses.items())},
        "by_kind": {k: {str(s): c for s, c in sorted(v.items())} for k, v in sorted(by_kind.items())},
        "five_xx": len(five_xx), "five_xx_samples": five_xx[:10],
        "auth_bypass": len(bypass), "auth_bypass_samples": bypass[:5],
        "worker_pids_before": pids_before, "worker_pids_after": pids_after,
        "worker_restarts": restarts, "gunicorn_trouble": trouble[:10],
        "logged_exceptions": sum(e["count"] for e in exceptions.values()), "exceptions": exceptions,
        "master_alive": alive, "after": after,
    }


def failed(figures: dict) -> bool:
    after = figures["after"]
    return bool(figures["five_xx"] or figures["auth_bypass"] or figures["worker_restarts"]
                or figures["worker_pids_before"] != figures["worker_pids_after"] or figures["gunicorn_trouble"]
                or not figures["master_alive"] or not after["readyz"] or after["messenger_ack"] != 200
                or after["telegram_ack"] != 200 or not after["messenger_reply"] or not after["telegram_reply"])


def print_report(figures: dict) -> None:
    print(f"{figures['requests']} hostile requests (seed {figures['seed']}, {figures['concurrency']} at a time) "
          f"in {figures['elapsed_s']} s")
    print("statuses:", ", ".join(f"{s}: {n}" for s, n in figures["statuses"].items()))
    for kind, counts in figures["by_kind"].items():
        print(f"  {kind:20s} " + ", ".join(f"{s}: {n}" for s, n in counts.items()))
    print(f"5xx: {figures['five_xx']}   auth bypass: {figures['auth_bypass']}")
    for sample in figures["five_xx_samples"] + figures["auth_bypass_samples"]:
        print("  ", sample)
    print(f"workers before {figures['worker_pids_before']} after {figures['worker_pids_after']}, "
          f"restarts {figures['worker_restarts']}, master alive {figures['master_alive']}")
    for line in figures["gunicorn_trouble"]:
        print("  gunicorn:", line)
    print(f"exceptions the app logged (handled): {figures['logged_exceptions']}")
    for key, item in figures["exceptions"].items():
        print(f"  {item['count']:4d}  {key}  {item['error']}  {item.get('where', '')}")
    print("afterwards:", ", ".join(f"{k} {v}" for k, v in figures["after"].items()))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print the figures as one JSON object")
    parser.add_argument("--requests", type=int, default=2000, help="hostile requests (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=1, help="random seed (default: %(default)s)")
    parser.add_argument("--concurrency", type=int, default=8, help="requests in flight (default: %(default)s)")
    args = parser.parse_args(argv)
    if args.requests < 1 or args.concurrency < 1:
        parser.error("--requests and --concurrency must be at least 1")
    figures = run(args.requests, args.seed, args.concurrency)
    if args.json:
        print(json.dumps(figures))
    else:
        print_report(figures)
    return 1 if failed(figures) else 0


if __name__ == "__main__":
    sys.exit(main())

"""Property-based: random and mutated inputs end in a clean error or a clean corpus, never an exception."""

from __future__ import annotations

import json

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from training.corpus import KINDS, Message
from training.import_pipeline import ImportSettings, run_import
from training.importers.base import ImportOptions

TELEGRAM = json.dumps(
    {
        "name": "Group",
        "type": "private_group",
        "id": 42,
        "messages": [
            {"id": 1, "type": "service", "date": "2023-01-02T10:00:00", "actor": "Ada", "action": "create_group"},
            {"id": 2, "type": "message", "date": "2023-01-02T10:11:12", "date_unixtime": "1672654272",
             "from": "Ada", "from_id": "user1", "text": ["see ", {"type": "bold", "text": "you"}, " 😂"],
             "text_entities": []},
            {"id": 3, "type": "message", "date": "2023-01-02T10:12:00", "date_unixtime": "1672654320",
             "from": None, "from_id": 7, "text": "hi", "text_entities": []},
        ],
    },
    ensure_ascii=False,
)
MESSENGER = json.dumps(
    {
        "participants": [{"name": "Ada"}, {"name": "Bob"}],
        "messages": [
            {"sender_name": "Bob", "timestamp_ms": 1600000060000, "content": "caf\u00c3\u00a9", "type": "Generic"},
            {"sender_name": "Ada", "timestamp_ms": 1600000000000, "content": "Bob added Eve to the group.", "type": "Subscribe"},
            {"sender_name": "Ada", "timestamp_ms": 1599999990000, "photos": [{"uri": "x.jpg", "creation_timestamp": 1}]},
        ],
        "title": "Chat",
        "thread_type": "Regular",
        "thread_path": "inbox/chat_1",
    }
)
WHATSAPP = (
    "12/28/19, 21:43 - Messages to this group are now secured with end-to-end encryption.\n"
    "12/28/19, 21:43 - Ada: hello\nsecond line\n"
    "12/28/19, 21:44 - Bob: <Media omitted>\n"
    "12/29/19, 09:01 - Bob: ok 👍\n"
)
CSV = "author,text,timestamp\nAda,hi,1600000000\nBob,yo,1600000001\n"
FACEBOOKLEARNER = json.dumps(
    {"letters": "ab", "authors": [{"email": "a@x.org", "name": "Ada"}], "messages": [{"email": "a@x.org", "message": "hi"}]}
)
SEEDS = [TELEGRAM.encode(), MESSENGER.encode(), WHATSAPP.encode(), CSV.encode(), FACEBOOKLEARNER.encode()]


def import_bytes(tmp_path, data: bytes):
    path = tmp_path / "input"
    path.write_bytes(data)
    return run_import([str(path)], ImportSettings(options=ImportOptions(author="Me")))


def check_clean(result):
    assert len(result.files) == 1
    report = result.files[0]
    if report.error:
        assert "\n" not in report.error and report.error.strip()
        assert "internal error" not in report.error  # importers raise ParseError, never crash
        assert not result.messages  # a failed file adds nothing
    for message in result.messages:
        assert isinstance(message, Message)
        assert isinstance(message.author, str) and message.author
        assert isinstance(message.text, str)
        assert message.kind in KINDS
        assert message.timestamp is None or isinstance(message.timestamp, float)
        json.loads(message.to_json())


mutation = st.one_of(
    st.tuples(st.just("truncate"), st.floats(0, 1)),
    st.tuples(st.just("flip"), st.floats(0, 1), st.integers(0, 255)),
    st.tuples(st.just("insert"), st.floats(0, 1), st.binary(min_size=1, max_size=8)),
    st.tuples(st.just("delete"), st.floats(0, 1), st.integers(1, 20)),
)


def mutate(data: bytes, steps) -> bytes:
    for step in steps:
        at = int(step[1] * len(data))
        if step[0] == "truncate":
            data = data[:at]
        elif step[0] == "flip" and data:
            at = min(at, len(data) - 1)
            data = data[:at] + bytes([step[2]]) + data[at + 1 :]
        elif step[0] == "insert":
            data = data[:at] + step[2] + data[at:]
        elif step[0] == "delete":
            data = data[:at] + data[at + step[2] :]
    return data


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(seed=st.sampled_from(SEEDS), steps=st.lists(mutation, min_size=1, max_size=4))
def test_mutated_exports_end_cleanly(tmp_path, seed, steps):
    check_clean(import_bytes(tmp_path, mutate(seed, steps)))


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.binary(max_size=512))
def test_random_bytes_end_cleanly(tmp_path, data):
    check_clean(import_bytes(tmp_path, data))


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4),
    max_leaves=20,
)
keys = st.sampled_from(
    ["messages", "participants", "sender_name", "timestamp_ms", "content", "senderName", "text", "from", "from_id",
     "date", "date_unixtime", "type", "chats", "list", "letters", "authors", "email", "message", "photos"]
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(doc=st.dictionaries(keys, json_values | st.lists(st.dictionaries(keys, json_values, max_size=6), max_size=4), max_size=6))
def test_wrongly_typed_json_ends_cleanly(tmp_path, doc):
    check_clean(import_bytes(tmp_path, json.dumps(doc).encode()))

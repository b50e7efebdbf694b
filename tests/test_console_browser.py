"""The console page in a real headless Chromium (Playwright), against the real app on a loopback server.

Skipped, saying why, only where Chromium or the playwright package is missing (`make test-services`
installs Chromium on Debian; `pip install -e .[dev]` installs playwright).
"""

from __future__ import annotations

import json
import os
import shutil
import threading
import time

import pytest
from werkzeug.serving import make_server

from bot.app import create_app, services_of
from bot.engine.engine import Engine, EngineConfig
from bot.engine.settings import SamplingSettings

pytestmark = pytest.mark.usefixtures("one_torch_thread")

CHROMIUM = os.environ.get("CHROMIUM") or next(
    (path for path in map(shutil.which, ("chromium", "chromium-browser", "google-chrome")) if path), None)
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]
REPLY_DELAY_S = 0.4  # long enough to see the typing indicator, short enough for a quick test
TIMEOUT_MS = 15_000


class SlowEngine:
    """The real engine, taking a little longer per message, as a real model on a real machine does."""

    def __init__(self, engine):
        self._engine = engine

    def __getattr__(self, name):
        return getattr(self._engine, name)

    def reply(self, *args, **kwargs):
        time.sleep(REPLY_DELAY_S)
        return self._engine.reply(*args, **kwargs)

    def speak(self, *args, **kwargs):
        time.sleep(REPLY_DELAY_S)
        return self._engine.speak(*args, **kwargs)


@pytest.fixture(scope="module")
def playwright_api():
    if CHROMIUM is None:
        pytest.skip("chromium not installed (apt-get install chromium, or `make test-services`); "
                    "the console's browser test is skipped")
    try:
        from playwright.sync_api import expect, sync_playwright
    except ImportError:
        pytest.skip("playwright not installed (pip install playwright); the console's browser test is skipped")
    expect.set_options(timeout=TIMEOUT_MS)  # a busy machine may take a while; a failure still fails
    return sync_playwright, expect


@pytest.fixture(scope="module")
def engine(tiny_artifact, one_torch_thread):
    with Engine(str(tiny_artifact), EngineConfig(settings=SamplingSettings(max_chars=24))) as e:
        yield e


@pytest.fixture(scope="module")
def server(engine, playwright_api):
    """The real app behind werkzeug's threaded server on 127.0.0.1; yields its base URL."""
    from conftest import free_port

    app = create_app({"TALKLIKE_STORE_URL": "memory://"}, engine=SlowEngine(engine), local=True)
    port = free_port()
    httpd = make_server("127.0.0.1", port, app, threaded=True)
    thread = threading.Thread(target=httpd.serve_forever, name="console-test-server", daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{port}/"
    httpd.shutdown()
    thread.join(timeout=10)
    httpd.server_close()
    services_of(app).background.close()


@pytest.fixture(scope="module")
def browser(playwright_api):
    sync_playwright, _ = playwright_api
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def page(browser, server):
    """A fresh tab on the console, loaded and ready; fails the test on any script error or dialog."""
    context = browser.new_context()
    page = context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    problems: list[str] = []
    page.on("pageerror", lambda err: problems.append(f"script error: {err}"))
    page.on("dialog", lambda dialog: (problems.append(f"dialog: {dialog.message}"), dialog.dismiss()))
    page.on("console", lambda msg: msg.type == "error" and problems.append(f"console: {msg.text}"))
    page.problems = problems
    page.goto(server)
    ready(page)
    yield page
    context.close()


# Records what the page showed, however briefly: the typing indicator's text each time it appeared, and
# when each simulated message was added (robust on a busy machine, where polling could miss a moment).
WATCH = """() => {
  const seen = window.seen = {typing: [], simulated: []};
  const typing = document.getElementById("typing");
  new MutationObserver(() => {
    if (!typing.hidden) seen.typing.push(document.getElementById("typing-text").textContent);
  }).observe(typing, {attributes: true, attributeFilter: ["hidden"]});
  new MutationObserver((records) => {
    for (const r of records) for (const n of r.addedNodes) if (n.classList.contains("msg")) seen.simulated.push(performance.now());
  }).observe(document.getElementById("simulate-log"), {childList: true});
}"""


def ready(page) -> None:
    page.wait_for_selector("body[data-ready='true']")
    page.evaluate(WATCH)


def seen(page) -> dict:
    return page.evaluate("window.seen")


def conversation_id(page) -> str:
    return page.evaluate("sessionStorage.getItem('talklike.console.id')")


def test_chat_with_a_persona(page, playwright_api, engine):
    _, expect = playwright_api
    expect(page.locator("#model-summary")).not_to_have_text("loading the model…")
    options = page.locator("#persona option")
    expect(options).to_have_text(["Alice — 3 messages", "Bob — 3 messages"])
    page.select_option("#persona", "Bob")
    expect(page.locator("#persona-info")).to_have_text("Bob wrote 3 messages in the training chats.")

    # Enter sends; markup in a message is shown as text, never run.
    page.fill("#message", "<b>hello</b> <img src=x onerror=alert(1)>")
    page.press("#message", "Enter")
    replies = page.locator("#chat-log .msg:not(.mine)")
    expect(replies).to_have_count(1)
    expect(page.locator("#typing")).to_be_hidden()
    assert seen(page)["typing"] == ["Bob is typing…"]  # shown while the reply was on its way
    expect(replies.locator(".author")).to_have_text("Bob")
    mine = page.locator("#chat-log .msg.mine .bubble")
    expect(mine).to_have_text("<b>hello</b> <img src=x onerror=alert(1)>")
    assert page.locator("#chat-log b, #chat-log img").count() == 0
    key = "console:" + conversation_id(page)
    history = engine.transcript(key)
    assert replies.locator(".bubble").text_content() == history[-1]["text"]
    assert history[-1]["author"] == "Bob"

    # Shift+Enter is a new line; the temperature slider is sent with the message.
    page.fill("#temperature", "0.3")
    expect(page.locator("#temperature-value")).to_have_text("0.30")
    page.click("#message")
    page.keyboard.type("line one")
    page.keyboard.press("Shift+Enter")
    page.keyboard.type("line two")
    page.keyboard.press("Enter")
    expect(replies).to_have_count(2)
    assert mine.nth(1).text_content() == "line one\nline two"
    assert engine.store.get(key).settings["temperature"] == 0.3

    # A reload of the tab shows the conversation so far; reset clears it here and on the server.
    page.reload()
    ready(page)
    expect(page.locator("#chat-log .msg")).to_have_count(4)
    expect(page.locator("#persona")).to_have_value("Bob")
    expect(page.locator("#temperature-value")).to_have_text("0.30")
    page.click("#reset")
    expect(page.locator("#chat-log .msg")).to_have_count(0)
    expect(page.locator("#chat-empty")).to_be_visible()
    assert engine.transcript(key) == [] and engine.store.get(key).persona == "Bob"
    # forget deletes the rest too: nothing of the conversation is left on the server
    page.fill("#message", "one more")
    page.press("#message", "Enter")
    expect(replies).to_have_count(1)  # the log starts over after the reset
    page.click("#forget")
    expect(page.locator("#chat-log .msg")).to_have_count(0)
    deadline = time.monotonic() + 10
    while engine.store.get(key) is not None:
        assert time.monotonic() < deadline, "the conversation was not forgotten"
        time.sleep(0.05)
    assert page.problems == []


def test_errors_are_shown_inline_and_the_text_kept(page, playwright_api):
    _, expect = playwright_api
    busy = {"error": "Service Unavailable", "message": "the model is busy; try again in 2 s"}
    page.route("**/api/chat", lambda route: route.fulfill(status=503, content_type="application/json",
                                                         headers={"Retry-After": "2"}, body=json.dumps(busy)))
    page.fill("#message", "are you there?")
    page.click("#send")
    expect(page.locator("#error")).to_have_text("the model is busy; try again in 2 s")
    expect(page.locator("#error")).to_be_visible()
    expect(page.locator("#chat-log .msg.mine.failed")).to_have_count(1)
    expect(page.locator("#message")).to_have_value("are you there?")
    expect(page.locator("#typing")).to_be_hidden()
    # the browser itself reports the 503 on the console; nothing else may go wrong
    assert [p for p in page.problems if "503" not in p] == []

    page.unroute("**/api/chat")
    page.click("#send")
    expect(page.locator("#chat-log .msg:not(.mine)")).to_have_count(1)
    expect(page.locator("#error")).to_be_hidden()


def test_simulate_personas_talking_among_themselves(page, playwright_api, engine):
    _, expect = playwright_api
    page.click("#tab-simulate")
    expect(page.locator("#tab-simulate")).to_have_attribute("aria-selected", "true")
    expect(page.locator("#composer")).to_be_hidden()
    expect(page.locator("#cast-list input:checked")).to_have_count(2)
    page.fill("#turns", "3")
    page.click("#sim-start")
    expect(page.locator("#sim-start")).to_be_disabled()
    messages = page.locator("#simulate-log .msg")
    expect(page.locator("#sim-progress")).to_have_text("done: 3 messages")
    expect(messages).to_have_count(3)
    watched = seen(page)
    assert watched["typing"] == ["someone is typing…"] * 3
    # one message per request: each appeared as soon as it was written, not all three at the end
    added = watched["simulated"]
    assert len(added) == 3 and added[2] - added[0] >= 1.5 * REPLY_DELAY_S * 1000
    authors = messages.locator(".author").all_text_contents()
    assert set(authors) <= {"Alice", "Bob"}
    key = "console:" + conversation_id(page) + "-sim"
    assert [m["author"] for m in engine.transcript(key)] == authors
    expect(page.locator("#typing")).to_be_hidden()

    # Only Bob now, and Stop ends a long run early.
    page.uncheck("#cast-list input[value='Alice']")
    page.fill("#turns", "50")
    page.click("#sim-start")
    deadline = time.monotonic() + 30
    while messages.count() < 4:  # (the page's CSP forbids evaluated script, so poll from here)
        assert time.monotonic() < deadline, "the long run did not start"
        time.sleep(0.05)
    page.click("#sim-stop")
    expect(page.locator("#sim-progress")).to_contain_text("stopped after")
    expect(page.locator("#sim-start")).to_be_enabled()
    count = messages.count()
    time.sleep(3 * REPLY_DELAY_S)
    assert 4 <= count < 50 and messages.count() == count  # stopped: nothing more arrives
    assert set(messages.locator(".author").all_text_contents()[3:]) == {"Bob"}

    # Back in chat mode, the chat is untouched.
    page.click("#tab-chat")
    expect(page.locator("#composer")).to_be_visible()
    expect(page.locator("#chat-log .msg")).to_have_count(0)
    assert page.problems == []


def test_who_would_say_this(page, playwright_api):
    _, expect = playwright_api
    page.fill("#who-text", "hello there")
    page.click("#who-ask")
    ranking = page.locator("#who-ranking li")
    expect(ranking).to_have_count(2)  # both personas, most likely first, with their share
    shares = [int(text.rsplit("—", 1)[1].strip().rstrip("%")) for text in ranking.all_text_contents()]
    assert 99 <= sum(shares) <= 101 and shares == sorted(shares, reverse=True)
    assert page.problems == []

"""`talklike messenger-setup`: the page's Get Started button, greeting and persistent menu.

One call to the Messenger Profile API (`POST {graph}/me/messenger_profile`). Run it once after connecting
the page (and again after changing the greeting or the personas); the webhook handles the payloads it sets.
"""

from __future__ import annotations

import argparse
import json
import os

from talklike.errors import UserError

DEFAULT_GREETING = "Hi {{user_first_name}}! I write like the people of a chat. Tap Get Started and say something."
MAX_GREETING = 160
MAX_MENU_ITEMS = 20
MAX_MENU_TITLE = 30

HELP = """\
Set the Messenger page's profile through the Messenger Profile API:
  - the Get Started button (payload GET_STARTED: the bot greets and offers the personas),
  - the greeting shown before the first message (--greeting; {{user_first_name}} is filled in by Facebook),
  - the persistent menu: Choose a persona, Start over, Help, and with --model one "Talk to NAME" per persona.
Settings come from the environment, flags override them:
  MESSENGER_PAGE_TOKEN   the page access token (--page-token)
  MESSENGER_GRAPH_URL    default https://graph.facebook.com/v21.0 (--graph-url)
  TALKLIKE_PERSONAS      with --model: only these personas go in the menu
Example:
  MESSENGER_PAGE_TOKEN=... talklike messenger-setup --model model.pt"""


def register(subparsers) -> None:
    setup = subparsers.add_parser("messenger-setup", help="set the Messenger page's Get Started button, greeting and menu",
                                  description=HELP, formatter_class=argparse.RawDescriptionHelpFormatter)
    setup.add_argument("--page-token", metavar="TOKEN", help="page access token (default: $MESSENGER_PAGE_TOKEN, which is better: "
                                                               "a flag shows in the process list)")
    setup.add_argument("--graph-url", metavar="URL",
                       help="Graph API base URL (default: $MESSENGER_GRAPH_URL or https://graph.facebook.com/v21.0)")
    setup.add_argument("--greeting", metavar="TEXT", help=f"greeting text, up to {MAX_GREETING} characters")
    setup.add_argument("--model", metavar="FILE", help="list this model's personas in the menu")
    setup.add_argument("--dry-run", action="store_true", help="print the profile as JSON instead of setting it")
    setup.set_defaults(handler=setup_command)


def setup_command(args) -> int:
    """Build the profile and send it; UserError with one line on failure."""
    from bot.infra.config import DEFAULT_GRAPH_URL

    token = args.page_token or os.environ.get("MESSENGER_PAGE_TOKEN", "").strip()
    graph_url = (args.graph_url or os.environ.get("MESSENGER_GRAPH_URL", "").strip() or DEFAULT_GRAPH_URL).rstrip("/")
    if not graph_url.startswith(("http://", "https://")):
        raise UserError(f"--graph-url must be an http(s) URL, got {graph_url!r}")
    greeting = args.greeting if args.greeting is not None else DEFAULT_GREETING
    if not greeting.strip() or len(greeting) > MAX_GREETING:
        raise UserError(f"--greeting must be 1-{MAX_GREETING} characters, got {len(greeting)}")
    personas = _personas(args.model) if args.model else []
    profile = build_profile(greeting, personas)
    if args.dry_run:
        print(json.dumps(profile, ensure_ascii=False, indent=2))
        return 0
    if not token:
        raise UserError("no page token: set MESSENGER_PAGE_TOKEN or pass --page-token")

    from bot.adapters.messenger.send_api import RetryPolicy, SendAPI, SendError

    api = SendAPI(graph_url, token, retry=RetryPolicy(attempts=3, backoff=1.0))
    try:
        api.set_profile(profile)
    except SendError as err:
        raise UserError(f"could not set the Messenger profile: {err}") from None
    finally:
        api.close()
    menu = profile["persistent_menu"][0]["call_to_actions"]
    print(f"Messenger profile set: Get Started button, greeting ({len(greeting)} characters), "
          f"menu of {len(menu)} items")
    return 0


def build_profile(greeting: str, personas: list[str]) -> dict:
    """The Messenger Profile API body; the payloads are those the webhook handles."""
    menu = [{"type": "postback", "title": "Choose a persona", "payload": "PERSONAS"},
            {"type": "postback", "title": "Start over", "payload": "RESET"},
            {"type": "postback", "title": "Help", "payload": "HELP"}]
    for name in personas[: MAX_MENU_ITEMS - len(menu)]:
        title = f"Talk to {name}"
        if len(title) > MAX_MENU_TITLE:
            title = title[: MAX_MENU_TITLE - 1] + "…"
        menu.append({"type": "postback", "title": title, "payload": f"PERSONA:{name}"})
    return {"get_started": {"payload": "GET_STARTED"},
            "greeting": [{"locale": "default", "text": greeting}],
            "persistent_menu": [{"locale": "default", "composer_input_disabled": False, "call_to_actions": menu}]}


def _personas(model: str) -> list[str]:
    """The model's personas (the TALKLIKE_PERSONAS allowlist, if set), most messages first."""
    from model.artifact import load_artifact

    artifact = load_artifact(model)  # ArtifactError (a UserError) names the problem
    allowed = os.environ.get("TALKLIKE_PERSONAS")
    names = list(artifact.authors.personas)
    if allowed:
        wanted = [p.strip() for p in allowed.split(",") if p.strip()]
        missing = [p for p in wanted if p not in names]
        if missing:
            raise UserError(f"TALKLIKE_PERSONAS names {', '.join(missing)}, not in the model")
        names = wanted
    authors = (artifact.card or {}).get("authors") or {}
    return sorted(names, key=lambda p: -int((authors.get(p) or {}).get("messages") or 0))

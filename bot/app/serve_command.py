"""`talklike serve`: run the web app (console, webhooks, health) locally on one process.

Production runs the same app under gunicorn (see the Procfile); this is for trying a model on your machine.
"""

from __future__ import annotations

import os
import socket

from talklike.errors import UserError


def register(subparsers) -> None:
    serve = subparsers.add_parser(
        "serve", help="run the web console and webhooks locally",
        description="Serve the app (console at /, webhooks, /healthz) on this machine. Settings come from the "
                    "environment (TALKLIKE_*, MESSENGER_*, TELEGRAM_*; see docs/settings.md); flags override them.")
    serve.add_argument("model", nargs="?", help="model file or URL (default: $TALKLIKE_MODEL)")
    serve.add_argument("--port", type=int, help="port (default: $PORT or 8000)")
    serve.add_argument("--host", default="127.0.0.1",
                       help="address to bind (default: %(default)s, where the console is open; on any other address "
                            "the app is public and the console needs TALKLIKE_CONSOLE_TOKEN)")
    serve.add_argument("--store", metavar="URL", help="conversation store (default: $TALKLIKE_STORE_URL or sqlite:///talklike.db)")
    serve.add_argument("--persona", metavar="NAME", help="default persona")
    serve.add_argument("--personas", metavar="A,B", help="only these personas may be imitated")
    serve.set_defaults(handler=serve_command)


def serve_command(args) -> int:
    from werkzeug.serving import make_server

    from bot.app import create_app, services_of
    from bot.infra.log_format import configure_logging

    env = dict(os.environ)
    overrides = {"TALKLIKE_MODEL": args.model, "PORT": None if args.port is None else str(args.port),
                 "TALKLIKE_STORE_URL": args.store, "TALKLIKE_PERSONA": args.persona, "TALKLIKE_PERSONAS": args.personas}
    env.update({k: v for k, v in overrides.items() if v is not None})
    if getattr(args, "verbose", False):
        env["TALKLIKE_LOG_LEVEL"] = "DEBUG"
    configure_logging("INFO")  # one JSON line per event, as under gunicorn; create_app applies the level
    local = is_loopback(args.host)
    app = create_app(env, local=local)
    services = services_of(app)
    port = services.config.port
    try:
        _check_port(args.host, port)  # werkzeug would print its own text and exit
        server = make_server(args.host, port, app, threaded=True)
    except OSError as err:
        services.close()
        raise UserError(f"cannot listen on {args.host}:{port}: {err.strerror} (try --port)") from None
    host = "localhost" if args.host in ("127.0.0.1", "0.0.0.0") else args.host
    personas = services.engine.personas
    shown = ", ".join(personas[:8]) + (f" and {len(personas) - 8} more" if len(personas) > 8 else "")
    print(f"talklike is serving {shown} at http://{host}:{port}/  (Ctrl-C stops)", flush=True)
    if "talklike.console" not in app.extensions:
        print("the console is off on a public address: set TALKLIKE_CONSOLE_TOKEN and TALKLIKE_CONSOLE_HOST to "
              "open it with a password (see docs/console.md)", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        print("stopping", flush=True)
    finally:
        server.server_close()
        services.close()
    return 0


def is_loopback(host: str) -> bool:
    """Does binding `host` keep the app on this machine?"""
    import ipaddress

    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _check_port(host: str, port: int) -> None:
    """OSError if `host:port` cannot be bound right now."""
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        probe.bind((host, port))

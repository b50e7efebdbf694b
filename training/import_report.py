"""The import report: per input file and per author, as a readable table or as JSON for scripts."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable

from training.corpus import Message
from training.importers.base import SET_ASIDE, FileReport


def summarize(messages: Iterable[Message], files: list[FileReport]) -> dict:
    """The summary both `import --json` and `stats --json` print."""
    by_author: Counter = Counter()
    chars: Counter = Counter()
    media: Counter = Counter()
    conversations: Counter = Counter()  # key -> text messages
    first = last = None
    for message in messages:
        conversations[message.conversation] += 0
        if message.kind == "text":
            conversations[message.conversation] += 1
            by_author[message.author] += 1
            chars[message.author] += len(message.text)
        elif message.kind not in SET_ASIDE:  # those are counted, by reason, in the file reports
            media[message.author] += 1
        if message.timestamp is not None:
            first = message.timestamp if first is None else min(first, message.timestamp)
            last = message.timestamp if last is None else max(last, message.timestamp)
    authors_sorted = sorted(by_author, key=lambda name: (-by_author[name], name))
    masked: Counter = Counter()
    set_aside: Counter = Counter()
    for report in files:
        masked.update(report.masked)
        set_aside.update(report.set_aside)
    return {
        "messages": sum(by_author.values()),
        "media": sum(media.values()),
        "authors": {name: by_author[name] for name in authors_sorted},
        "author_chars": {name: chars[name] for name in authors_sorted},
        "conversations": len(conversations),
        # every conversation key (for --exclude-conversation) with its text messages, most first
        "conversation_messages": dict(sorted(conversations.items(), key=lambda kv: (-kv[1], kv[0]))),
        "first_timestamp": first,
        "last_timestamp": last,
        "masked": dict(masked.most_common()),  # identifiers scrubbed, by kind
        # kept in place but not read as the author's words (forwards, bot posts, pastes), by reason
        "set_aside": dict(set_aside.most_common()),
        "cut_to_length": sum(report.cut for report in files),
        "files": [report.to_json() for report in files],
    }


def render(summary: dict, ignored: dict | None = None, conversations: bool = False,
           not_followed: list | None = None) -> str:
    """A plain-text report: files, skipped reasons, authors (and with `conversations`, every conversation
    key with its message count)."""
    lines: list[str] = []
    files = summary["files"]
    if files:
        width = min(max(len(_short(f["path"])) for f in files), 60)
        lines.append(f"{'file':<{width}}  {'format':<15} {'convs':>5} {'text':>8} {'media':>6} {'aside':>6} {'skipped':>8}")
        for f in files:
            path = _short(f["path"])
            if f.get("error"):
                lines.append(f"{path:<{width}}  failed (see below)")
                continue
            skipped = sum(f["skipped"].values())
            lines.append(
                f"{path:<{width}}  {f['format'] or '?':<15} {f.get('conversations', 0):>5} "
                f"{f['messages']:>8} {f.get('media', 0):>6} {sum(f.get('set_aside', {}).values()):>6} {skipped:>8}"
            )
        reasons: Counter = Counter()
        for f in files:
            reasons.update(f["skipped"])
        if reasons:
            lines.append("")
            lines.append("skipped: " + ", ".join(f"{reason} {count}" for reason, count in reasons.most_common()))
    if summary.get("set_aside"):
        lines.append("kept in place, not read as the author's words: "
                     + ", ".join(f"{reason} {count}" for reason, count in summary["set_aside"].items()))
        if summary.get("paste_threshold") and any(r.startswith("paste") for r in summary["set_aside"]):
            lines.append(f"(a paste by length: over {summary['paste_threshold']} characters in this import)")
    if summary.get("masked"):
        lines.append("masked: " + ", ".join(f"{kind} {count}" for kind, count in summary["masked"].items()))
    if summary.get("cut_to_length"):
        lines.append(f"cut to the length cap before scrubbing: {summary['cut_to_length']} message(s)")
    failed = [f for f in files if f.get("error")]
    if failed:
        lines.append("")
        lines.extend(f"error: {f['path']}: {f['error']}" for f in failed)
    for root, count in (ignored or {}).items():
        lines.append(f"ignored {count} file(s) in {root} that hold no chat messages (profile data, media, ...)")
    for link in not_followed or ():
        lines.append(f"not followed: {link.path} (a symlink to {link.target}, outside the input)")
    if summary["authors"]:
        lines.append("")
        name_width = min(max(len(name) for name in summary["authors"]), 40)
        lines.append(f"{'author':<{name_width}} {'messages':>9} {'characters':>11}")
        for name, count in summary["authors"].items():
            lines.append(f"{name[:40]:<{name_width}} {count:>9} {summary['author_chars'][name]:>11}")
    if conversations and summary["conversation_messages"]:
        lines.append("")
        key_width = min(max(len(key) for key in summary["conversation_messages"]), 60)
        lines.append(f"{'conversation':<{key_width}} {'messages':>9}")
        for key, count in summary["conversation_messages"].items():
            lines.append(f"{key:<{key_width}} {count:>9}")
    lines.append("")
    lines.append(
        f"{summary['messages']} text messages ({summary['media']} media) by {len(summary['authors'])} authors "
        f"in {summary['conversations']} conversations"
    )
    return "\n".join(lines)


def _short(path: str) -> str:
    return path if len(path) <= 60 else "…" + path[-59:]

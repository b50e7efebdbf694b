"""tinyshakespeare.txt → a talklike corpus: speaker = author, each speech = one message.

The text is speeches separated by blank lines, each opening with a `Speaker:` line. Scenes are not marked,
so the plays are cut into conversations of a fixed number of speeches (`--block`); evaluation then holds
out the latest 10 % of each block, spread over the whole text. A speech keeps its line breaks. There are
no timestamps, so the only session marker is at a block's start.

    python benchmarks/shakespeare_corpus.py /path/to/tinyshakespeare.txt -o corpus.jsonl [--block 100]

Importable (`shakespeare_messages`) for the quality benchmark, which converts on the fly.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from collections import Counter

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from training.corpus import Message, write_corpus  # noqa: E402

SPEAKER = re.compile(r"^([A-Z][^:\n]{0,40}):$")  # 'First Citizen:', 'KING RICHARD III:', 'Senators, &C:'
DEFAULT_BLOCK = 100


def read_speeches(text: str) -> list[tuple[str, str]]:
    """(speaker, speech) pairs in order; a paragraph without a `Speaker:` line continues the last speech, a
    speaker line with nothing under it is dropped."""
    speeches: list[tuple[str, str]] = []
    for paragraph in re.split(r"\n\s*\n", text.replace("\r\n", "\n")):
        lines = paragraph.strip("\n").split("\n")
        if not lines or not lines[0].strip():
            continue
        match = SPEAKER.match(lines[0].strip())
        if match:  # a speaker line alone is a speech with no words (a cue): skipped
            speeches.append((match.group(1), "\n".join(lines[1:]).strip()))
        elif speeches:  # a stray paragraph: part of the previous speech
            speaker, speech = speeches[-1]
            speeches[-1] = (speaker, speech + "\n\n" + paragraph.strip())
    return [(s, t) for s, t in speeches if t]


def shakespeare_messages(path: str, block: int = DEFAULT_BLOCK) -> list[Message]:
    """The corpus messages of a tinyshakespeare-style file, `block` speeches per conversation."""
    if block < 2:
        raise ValueError("--block must be at least 2 speeches")
    with open(path, encoding="utf-8") as handle:
        speeches = read_speeches(handle.read())
    return [
        Message(conversation=f"shakespeare:{i // block:04d}", platform="text", author=speaker, author_id=None,
                timestamp=None, text=speech)
        for i, (speaker, speech) in enumerate(speeches)
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("text", help="tinyshakespeare.txt")
    parser.add_argument("-o", "--output", required=True, help="corpus .jsonl to write")
    parser.add_argument("--block", type=int, default=DEFAULT_BLOCK,
                        help="speeches per conversation (default: %(default)s)")
    args = parser.parse_args(argv)
    messages = shakespeare_messages(args.text, args.block)
    write_corpus(args.output, messages)
    speakers = Counter(m.author for m in messages)
    chars = sum(len(m.text) for m in messages)
    print(f"{len(messages)} speeches ({chars} characters, {chars / max(1, len(messages)):.0f} per speech) by "
          f"{len(speakers)} speakers ({sum(1 for n in speakers.values() if n >= 10)} with 10+), "
          f"{len({m.conversation for m in messages})} conversations of {args.block}; wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

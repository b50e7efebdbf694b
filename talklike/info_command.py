"""`talklike info model.pt [--json]`: what a model file is, from its card (no training code needed)."""

from __future__ import annotations

import argparse
import json


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "info",
        help="show a model file's card",
        description="Print the model card of an exported model: personas, data summary, metrics, size.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("model", metavar="MODEL", help="model file written by talklike export")
    parser.add_argument("--json", action="store_true", help="print the metadata as one JSON object")
    parser.set_defaults(handler=run_info_command)


def describe(path: str) -> dict:
    """The file's metadata (card, config, personas, format) without loading the TorchScript module."""
    import os

    from model.artifact import read_metadata

    meta = read_metadata(path)
    names = meta.get("authors", {}).get("names", [])
    return {
        "path": path,
        "size_bytes": os.path.getsize(path),
        "format_version": meta["format_version"],
        "quantized": meta.get("quantized"),
        "personas": names[1:],
        "vocab_size": meta.get("config", {}).get("vocab_size"),
        "config": meta.get("config", {}),
        "guard": bool(meta.get("guard")),
        "card": meta.get("card", {}),
    }


def run_info_command(args) -> int:
    info = describe(args.model)
    if args.json:
        print(json.dumps(info, ensure_ascii=False, indent=2))
        return 0
    card = info["card"]
    metrics = card.get("metrics") or {}
    data = card.get("data") or {}
    lines = [
        f"{info['path']}: talklike model, format {info['format_version']}, {info['size_bytes'] / 1024:.1f} KiB"
        f"{', int8' if info['quantized'] else ''}",
        f"  preset        {card.get('preset', '?')}, {card.get('parameters', 0):,} parameters, "
        f"vocabulary {info['vocab_size']}",
        f"  created       {card.get('created', '?')} (talklike {card.get('talklike_version', '?')}, "
        f"step {card.get('step', '?')})",
    ]
    if metrics.get("val_bpc") is not None:
        lines.append(f"  validation    {metrics['val_bpc']:.3f} bits per character")
    if data:
        span = data.get("date_range") or ["?", "?"]
        lines.append(f"  data          {data.get('spoken_messages', data.get('messages', '?')):,} messages, "
                     f"{data.get('chars', 0):,} characters, {data.get('conversations', '?')} conversations, "
                     f"{span[0]} to {span[1]}")
    guard = "on (a reply repeating a training message of 20+ characters or a long span is resampled, then cut)"
    lines.append(f"  guard         {guard if info['guard'] else 'none'}")
    order = (info["card"].get("train_config") or {}).get("ngram_order")
    counts = f"{order}-gram counts of the chats (keep this file as private as the export)" if order else "order ?"
    lines.append(f"  n-gram        {counts if info['config'].get('experts') else 'none (the network alone)'}")
    names = "on (a reply may open with the name of someone who spoke recently)" if info["config"].get("experts") == 3 \
        else "none"
    lines.append(f"  names expert  {names}")
    lines.append("  personas")
    authors = card.get("authors") or {}
    by_author = metrics.get("val_bpc_by_author") or {}
    for name in info["personas"]:
        counts = authors.get(name, {})
        bpc = by_author.get(name)
        lines.append(f"    {name:<20} {counts.get('messages', 0):>7,} messages"
                     f"{'' if bpc is None else f'  {bpc:.3f} bpc'}")
    print("\n".join(lines))
    return 0

"""`talklike export RUN_DIR -o model.pt`: the one file a server needs."""

from __future__ import annotations

import argparse

EXPORT_HELP = """\
Export a training run to one model file: a TorchScript module with the vocabulary, authors, config,
model card (data summary, metrics, date, preset, parameter count) and the memorization guard inside.
The written file is loaded back and checked against the checkpoint before the command succeeds.
--quantize int8 stores the LSTM and output weights as int8 (smaller, faster on CPU, slightly different).
"""


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "export",
        help="export a training run to a model file",
        description=EXPORT_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("run_dir", metavar="RUN_DIR", help="training run directory")
    parser.add_argument("-o", "--output", default="model.pt", help="model file to write (default: %(default)s)")
    parser.add_argument("--quantize", choices=("int8",), help="dynamic int8 quantization of LSTM and output layers")
    parser.add_argument("--checkpoint", choices=("best", "last"), default="best",
                        help="which checkpoint to export (default: %(default)s)")
    parser.set_defaults(handler=run_export_command)


def run_export_command(args) -> int:
    from training.export import export_run

    result = export_run(args.run_dir, args.output, args.quantize, args.checkpoint)
    kind = "int8" if args.quantize else "float32"
    check = (f"next-character distributions within {result.mean_tv:.3f} (mean total variation) of the checkpoint"
             if args.quantize
             else "logits match the checkpoint")
    print(f"wrote {result.path} ({_size(result.size_bytes)}, {kind}, {result.card['parameters']:,} parameters, "
          f"{len(result.card.get('authors', {})) - 1 if result.card.get('authors') else 0} personas); {check}")
    return 0


def _size(n: int) -> str:
    for unit in ("bytes", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n} bytes"

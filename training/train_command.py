"""`talklike train CORPUS -o RUN_DIR`: train a model on a corpus (also under torchrun, unchanged)."""

from __future__ import annotations

import argparse

TRAIN_HELP = """\
Train an author-conditioned character LSTM on a corpus written by `talklike import`.

The run directory receives config.json, metrics.jsonl, checkpoints/best.pt and last.pt (written
atomically), preview samples for the most active personas under samples/, loss.png, guard.bin and
data.json. The latest part of each conversation is held out for validation (bits per character).

Personas: every author with at least --min-author-messages messages (10), at most the --max-personas
most active (200; a public chat has thousands of speakers); everyone else reads as ⟨other⟩. The first
line the run prints says how many there are and why; --personas A,B names them instead. With
--max-minutes, validation takes at most a tenth of the time.

Stops at --max-steps, --max-minutes or --epochs (whichever comes first; 10 epochs when none is given),
or when validation stops improving for --patience evaluations. Ctrl-C or SIGTERM saves a checkpoint and
exits; --resume continues the run exactly where it stopped (same data position, optimizer and random
state). Uses CUDA with bf16 when available; `torchrun --nproc_per_node=N -m talklike train ...` trains
on N GPUs (or CPU processes) with the same command.

presets: tiny (tests, seconds), small (CPU, minutes), medium (CPU hours / GPU), large (GPU)
"""


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "train",
        help="train a model on a corpus",
        description=TRAIN_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    # Every option defaults to None here so a resumed run can tell what was given explicitly.
    parser.add_argument("corpus", metavar="CORPUS", help="corpus .jsonl (from talklike import)")
    parser.add_argument("-o", "--output", required=True, metavar="RUN_DIR", help="run directory to write")
    parser.add_argument("--preset", choices=("tiny", "small", "medium", "large"), help="model size (default: small)")
    parser.add_argument("--personas", metavar="A,B", help="comma-separated authors to learn as personas "
                        "(everyone else reads as ⟨other⟩; default: the most active authors with enough messages)")
    parser.add_argument("--min-author-messages", type=int, metavar="N",
                        help="authors with fewer messages fold into ⟨other⟩ (default: 10)")
    parser.add_argument("--max-personas", type=int, metavar="N",
                        help="at most the N most active of them become personas, the rest ⟨other⟩; "
                        "0: all (default: 200)")
    parser.add_argument("--max-steps", type=int, metavar="N", help="stop after N optimizer steps")
    parser.add_argument("--max-minutes", type=float, metavar="M", help="stop after M minutes of training")
    parser.add_argument("--epochs", type=float, metavar="E", help="stop after E passes over the training stream")
    parser.add_argument("--batch-size", type=int, metavar="B", help="parallel streams per process (default: 32)")
    parser.add_argument("--seq-len", type=int, metavar="T", help="steps of backpropagation per chunk (default: 128)")
    parser.add_argument("--lr", type=float, help="peak learning rate (default: 2e-3)")
    parser.add_argument("--dropout", type=float, help="dropout (default: the preset's)")
    parser.add_argument("--ngram-order", type=int, metavar="N",
                        help="order of the n-gram counts the network writes on top of (default: 7; 0: the network "
                             "alone, and no counts in the model file)")
    parser.add_argument("--no-names", dest="names_expert", action="store_const", const=False,
                        help="no names expert (by default a message's first word may be the name of someone who "
                             "spoke recently, and the model learns how often it is)")
    parser.add_argument("--seed", type=int, help="random seed (default: 0)")
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), help="where to train (default: auto)")
    parser.add_argument("--eval-every", type=int, metavar="N", help="validate and write samples every N steps (default: 200)")
    parser.add_argument("--patience", type=int, metavar="N",
                        help="stop after N evaluations without improvement; 0 never stops early (default: 5)")
    parser.add_argument("--resume", action="store_true", help="continue the run in RUN_DIR from checkpoints/last.pt")
    parser.add_argument("--quiet", action="store_true", help="no progress bar or messages")
    parser.set_defaults(handler=run_train_command)


def run_train_command(args) -> int:
    from talklike.errors import UserError
    from training.run_files import resume_config
    from training.train_config import TrainConfig
    from training.trainer import train

    given = {
        "preset": args.preset,
        "min_author_messages": args.min_author_messages,
        "max_personas": args.max_personas,
        "max_steps": args.max_steps,
        "max_minutes": args.max_minutes,
        "epochs": args.epochs,
        "batch_size": args.batch_size,
        "seq_len": args.seq_len,
        "lr": args.lr,
        "dropout": args.dropout,
        "ngram_order": args.ngram_order,
        "names_expert": args.names_expert,
        "seed": args.seed,
        "device": args.device,
        "eval_every": args.eval_every,
        "patience": args.patience,
        "quiet": args.quiet,
    }
    if args.personas is not None:
        personas = [p.strip() for p in args.personas.split(",") if p.strip()]
        if not personas:
            raise UserError("--personas: give at least one author name")
        given["personas"] = personas
    given = {key: value for key, value in given.items() if value is not None}
    if args.resume:
        config = resume_config(args.output, {**given, "corpus": args.corpus})
    else:
        config = TrainConfig(corpus=args.corpus, run_dir=args.output, **given)
    train(config, resume=args.resume)
    return 0

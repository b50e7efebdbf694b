"""`talklike evaluate MODEL_OR_RUN CORPUS`: imitation quality on the corpus's held-out part."""

from __future__ import annotations

import argparse
import json
import math

from talklike.errors import UserError

EVALUATE_HELP = """\
Measure how well a model imitates the people in a corpus, on the held-out (latest) part of each
conversation — the same split training used, so nothing scored was trained on.

  bpc                   bits per character of held-out messages (lower is better), overall and per author
  author_gain_bpc       how much worse the model does when told the author is ⟨other⟩ (author conditioning)
  context_gain_bpc      how much worse it does when the preceding conversation is someone else's (context)
  next_speaker_accuracy the speaker head's guess of who writes next, at each message end
  persona_fidelity      a character n-gram style classifier, trained on the real training messages, reads
                        generated replies: how often does it name the persona they were generated for?
  real_fidelity         the same classifier on real held-out messages: the ceiling for persona_fidelity

MODEL_OR_RUN is an exported model (.pt), a checkpoint file, or a training run directory (best checkpoint).
No message text is printed.
"""


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "evaluate",
        help="evaluate a model on a corpus's held-out part",
        description=EVALUATE_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("model", metavar="MODEL_OR_RUN", help="model .pt, checkpoint file or run directory")
    parser.add_argument("corpus", metavar="CORPUS", help="corpus .jsonl (the one the model was trained on)")
    parser.add_argument("--json", action="store_true", help="print the results as one JSON object")
    parser.add_argument("--samples-per-persona", type=int, default=24, metavar="N",
                        help="generated replies per persona for persona_fidelity (default: %(default)s)")
    parser.add_argument("--context", type=int, default=8, metavar="K",
                        help="preceding messages read before each scored message (default: %(default)s)")
    parser.add_argument("--max-messages", type=int, default=20000, metavar="N",
                        help="score at most N held-out messages for bpc, a seeded sample (default: %(default)s)")
    parser.add_argument("--gain-messages", type=int, default=256, metavar="N",
                        help="held-out messages scored one by one for the gains (default: %(default)s)")
    parser.add_argument("--temperature", type=float, default=0.8, help="sampling temperature (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=0, help="seed for sampling and subsampling (default: %(default)s)")
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu", help="where to run (default: %(default)s)")
    parser.set_defaults(handler=run_evaluate_command)


def run_evaluate_command(args) -> int:
    from training.evaluation import EvalSettings, evaluate

    if args.samples_per_persona < 0:
        raise UserError("--samples-per-persona must be 0 or more")
    if args.context < 0:
        raise UserError("--context must be 0 or more")
    if args.max_messages < 1 or args.gain_messages < 1:
        raise UserError("--max-messages and --gain-messages must be at least 1")
    if args.seed < 0:
        raise UserError("--seed must be 0 or more")
    if args.device == "cuda":
        import torch

        if not torch.cuda.is_available():
            raise UserError("--device cuda: CUDA is not available here")
    settings = EvalSettings(
        context_messages=args.context,
        max_messages=args.max_messages,
        gain_messages=args.gain_messages,
        samples_per_persona=args.samples_per_persona,
        temperature=args.temperature,
        seed=args.seed,
        device=args.device,
    )
    result = evaluate(args.model, args.corpus, settings)
    if args.json:
        print(json.dumps(result, ensure_ascii=False, indent=2))
    else:
        print(format_report(result))
    return 0


def _num(value, digits: int = 3, percent: bool = False) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    return f"{100 * value:.1f}%" if percent else f"{value:.{digits}f}"


def _same_note(counts: dict) -> str:
    same = counts.get("context_gain_same_conversation", 0)
    return f"; {same} from a distant part of their own conversation" if same else ""


def format_report(result: dict) -> str:
    """The readable table: per-author bpc and fidelity, then the gains; numbers only, never text."""
    counts = result["counts"]
    settings = result["settings"]
    lines = [
        f"held-out: {counts['held_out_messages']} messages, scored {counts['scored_messages']} "
        f"({counts['scored_chars']} characters), context {settings['context_messages']} messages, "
        f"{result['seconds']:.1f} s",
        "",
    ]
    names = list(result["bpc_by_author"])
    names += [n for n in result["real_fidelity_by_author"] if n not in names]
    width = max([len("author")] + [len(n) for n in names])
    lines.append(f"{'author':<{width}}  {'bpc':>6}  {'fidelity':>9}  {'ceiling':>8}")
    for name in names:
        lines.append(
            f"{name:<{width}}  {_num(result['bpc_by_author'].get(name)):>6}  "
            f"{_num(result['persona_fidelity_by_author'].get(name), percent=True):>9}  "
            f"{_num(result['real_fidelity_by_author'].get(name), percent=True):>8}"
        )
    lines.append(
        f"{'all':<{width}}  {_num(result['bpc']):>6}  {_num(result['persona_fidelity'], percent=True):>9}  "
        f"{_num(result['real_fidelity'], percent=True):>8}"
    )
    lines += [
        "",
        f"author_gain_bpc        {_num(result['author_gain_bpc']):>8}   bpc lost when the author is ⟨other⟩ "
        f"({counts['author_gain_messages']} messages)",
        f"context_gain_bpc       {_num(result['context_gain_bpc']):>8}   bpc lost with another conversation as "
        f"context ({counts['context_gain_messages']} messages{_same_note(counts)})",
        f"next_speaker_accuracy  {_num(result['next_speaker_accuracy'], percent=True):>8}   "
        f"over {counts['next_speaker_turns']} turns",
        f"persona_fidelity       {_num(result['persona_fidelity'], percent=True):>8}   "
        f"{counts['generated_replies']} generated replies, {counts['personas_evaluated']} personas; "
        f"ceiling (real_fidelity) {_num(result['real_fidelity'], percent=True)}, "
        f"chance {_num(result['fidelity_chance'], percent=True)}",
    ]
    return "\n".join(lines)

"""`talklike evaluate MODEL_OR_RUN CORPUS`: imitation quality on the corpus's held-out part."""

from __future__ import annotations

import argparse
import json
import math
import sys

from talklike.errors import UserError

REPORT_REPLIES = 3  # generated replies per persona shown in the report

EVALUATE_HELP = """\
Measure how well a model imitates the people in a corpus, on the held-out (latest) part of each
conversation — the same split training used, so nothing scored was trained on.

  bpc                   bits per character of held-out messages (lower is better), overall and per author;
                        bpc_per_message: the mean of each message's own bpc (a few long pastes weigh little)
  author_gain_bpc       how much worse the model does when told the author is ⟨other⟩ (author conditioning)
  context_gain_bpc      how much worse it does when the preceding conversation is someone else's (context)
  next_speaker_accuracy the speaker head's guess of who writes next, at each message end
  persona_fidelity      a character n-gram style classifier, trained on the real training messages, reads
                        generated replies: how often does it name the persona they were generated for?
  real_fidelity         the same classifier on real held-out messages: the ceiling for persona_fidelity
  copy_rate             generated replies that contain a training message of 20+ characters or a
                        60-character span of one, with the model's memorization guard on (must be 0) and
                        off (copy_rate_unguarded): what the guard is holding back
  self_attribution_accuracy
                        each sampled held-out message is scored after its real context under every
                        candidate persona (all of them up to 64; else its conversation's nearby speakers
                        and a seeded sample of others): how often does its true author give the fewest bits?
                        Beside it: the same with the speaker head's prior for who writes next, and the style
                        classifier on the same messages among the same candidates
                        (real_fidelity_same_candidates), the figure the model has to beat

Per-persona figures name the --top-personas most active personas; the others pool into ⟨rest⟩.
MODEL_OR_RUN is an exported model (.pt), a checkpoint file, or a training run directory (best checkpoint).
No message text is printed. --report DIR writes report.html with plots; it shows generated replies, and
real messages only with --include-real.
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
    parser.add_argument("--attribution-messages", type=int, default=256, metavar="N",
                        help="held-out messages attributed for self_attribution_accuracy (default: %(default)s)")
    parser.add_argument("--top-personas", type=int, default=32, metavar="N",
                        help="per-persona figures for the N most active personas, ⟨rest⟩ for the others; "
                        "replies are generated for these only (default: %(default)s)")
    parser.add_argument("--report", metavar="DIR", help="write DIR/report.html with PNG plots")
    parser.add_argument("--run", metavar="RUN_DIR", help="the training run (metrics.jsonl) for the report's "
                        "curves, when MODEL_OR_RUN is an exported file")
    parser.add_argument("--include-real", action="store_true",
                        help="let the report show real held-out messages (by default it shows none)")
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
    if args.attribution_messages < 0 or args.top_personas < 0:
        raise UserError("--attribution-messages and --top-personas must be 0 or more")
    if (args.run or args.include_real) and not args.report:
        raise UserError("--run and --include-real go with --report DIR")
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
        attribution_messages=args.attribution_messages,
        top_personas=args.top_personas,
        keep_replies=REPORT_REPLIES if args.report else 0,
        temperature=args.temperature,
        seed=args.seed,
        device=args.device,
    )
    result = evaluate(args.model, args.corpus, settings)
    if args.report:
        from training.report import write_report

        path = write_report(args.report, result, args.corpus, run_dir=args.run, include_real=args.include_real)
        print(f"wrote {path}", file=sys.stderr)
    result.pop("replies_by_persona", None)  # generated text is for the report, not the console
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
        f"{result['seconds']:.1f} s ("
        + ", ".join(f"{name} {seconds:.1f}" for name, seconds in result.get("seconds_by_measure", {}).items()) + ")",
        f"bpc {_num(result['bpc'])} per character, {_num(result['bpc_per_message'])} per message (mean of each "
        f"message's own)",
        "",
    ]
    if counts["personas"] > counts["personas_listed"]:
        lines.insert(1, f"{counts['personas']:,} personas: the {counts['personas_listed']} most active by name, "
                        f"the others as {result['rest_label']}")
    names = list(result["bpc_by_author"])
    names += [n for n in result["real_fidelity_by_author"] if n not in names]
    names += [n for n in result["self_attribution_by_author"] if n not in names]
    width = max([len("author")] + [len(n) for n in names])
    lines.append(f"{'author':<{width}}  {'bpc':>6}  {'fidelity':>9}  {'ceiling':>8}  {'self-attr':>9}  {'style':>6}")
    for name in names:
        lines.append(
            f"{name:<{width}}  {_num(result['bpc_by_author'].get(name)):>6}  "
            f"{_num(result['persona_fidelity_by_author'].get(name), percent=True):>9}  "
            f"{_num(result['real_fidelity_by_author'].get(name), percent=True):>8}  "
            f"{_num(result['self_attribution_by_author'].get(name), percent=True):>9}  "
            f"{_num(result['real_fidelity_same_candidates_by_author'].get(name), percent=True):>6}"
        )
    lines.append(
        f"{'all':<{width}}  {_num(result['bpc']):>6}  {_num(result['persona_fidelity'], percent=True):>9}  "
        f"{_num(result['real_fidelity'], percent=True):>8}  "
        f"{_num(result['self_attribution_accuracy'], percent=True):>9}  "
        f"{_num(result['real_fidelity_same_candidates'], percent=True):>6}"
    )
    lines += [
        "",
        f"author_gain_bpc        {_num(result['author_gain_bpc']):>8}   bpc lost when the author is ⟨other⟩ "
        f"({counts['author_gain_messages']} messages)",
        f"context_gain_bpc       {_num(result['context_gain_bpc']):>8}   bpc lost with another conversation as "
        f"context ({counts['context_gain_messages']} messages{_same_note(counts)})",
        f"next_speaker_accuracy  {_num(result['next_speaker_accuracy'], percent=True):>8}   "
        f"over {counts['next_speaker_turns']} turns",
        f"self_attribution       {_num(result['self_attribution_accuracy'], percent=True):>8}   "
        f"true author gives the fewest bits ({counts['self_attribution_messages']} messages, "
        f"{counts['self_attribution_candidates']} candidates each, chance "
        f"{_num(result['self_attribution_chance'], percent=True)}); with the speaker prior "
        f"{_num(result['self_attribution_accuracy_with_turns'], percent=True)}; style classifier, same candidates "
        f"{_num(result['real_fidelity_same_candidates'], percent=True)}",
        f"persona_fidelity       {_num(result['persona_fidelity'], percent=True):>8}   "
        f"{counts['generated_replies']} generated replies, {counts['personas_evaluated']} personas; "
        f"ceiling (real_fidelity) {_num(result['real_fidelity'], percent=True)}, "
        f"chance {_num(result['fidelity_chance'], percent=True)}",
        f"copy_rate              {_num(result['copy_rate'], percent=True):>8}   generated replies repeating training "
        f"text with the guard on ({_guard_note(result)}); guard off "
        f"{_num(result['copy_rate_unguarded'], percent=True)}",
    ]
    return "\n".join(lines)


def _guard_note(result: dict) -> str:
    if result["copy_guard"] == "none":
        return "this model has no guard, so on equals off"
    counts = result["counts"]
    return f"{counts['copy_resampled']} resampled, {counts['copy_cut']} cut"

"""`talklike evaluate ... --report DIR`: one HTML page with PNG plots about a model, for people to look at.

DIR/report.html shows the headline figures, the training and validation curves (from the run's metrics.jsonl:
an exported artifact's card holds only the figures of its own step, so for a .pt the run directory is given
with --run, and the page says so when it is not), per-persona bpc beside a baseline's when one is given,
self-attribution as a confusion matrix, and per persona its measures beside a few generated replies.

No real message text is in the page unless `include_real`: generated replies that repeat a real message, or
a span of `REAL_SPAN` characters of one, are left out (a model can learn a message by heart), and real
held-out messages appear only when asked for.
"""

from __future__ import annotations

import html
import math
import os
from collections.abc import Mapping
from datetime import datetime, timezone

import numpy as np

from model.guard import MemorizationGuard
from talklike.errors import UserError
from training.corpus import Message, read_corpus
from training.dataset import split_messages, spoken
from training.run_files import MetricsLog, draw_losses

REAL_SPAN = 20  # a generated reply sharing this many consecutive characters with a real message is not shown
REAL_EXAMPLES = 3  # real held-out messages per persona, with include_real


def write_report(out_dir: str, result: dict, corpus_path: str, run_dir: str | None = None,
                 include_real: bool = False, baseline_bpc: Mapping[str, float] | None = None) -> str:
    """Write `out_dir`/report.html and its PNGs for an `evaluate()` result (taken with `keep_replies` for the
    replies); returns the page's path.

    `run_dir`: the training run whose metrics.jsonl gives the curves (default: the evaluated model when it is a
    run directory or one of its checkpoints). `baseline_bpc`: persona → held-out bpc of a classical baseline
    (the character n-gram of training/ngram_baseline.py, fitted on the same split); shown beside the model's
    when given. `include_real`: allow real held-out messages (and unfiltered replies) in the page.
    """
    plt = _pyplot()
    os.makedirs(out_dir, exist_ok=True)
    messages = list(read_corpus(os.fspath(corpus_path)))
    run_dir = run_dir or _run_dir_of(result["model"]["source"])
    rows = _metrics_rows(run_dir)
    baseline = dict(baseline_bpc or {})

    sections = [_headline(result)]
    sections.append(_curves_section(plt, out_dir, rows, run_dir))
    sections.append(_bpc_section(plt, out_dir, result, baseline))
    sections.append(_attribution_section(plt, out_dir, result))
    replies, hidden = _shown_replies(result.get("replies_by_persona") or {}, messages, include_real)
    real = _real_examples(messages, result, include_real)
    sections.append(_persona_section(result, baseline, replies, hidden, real, include_real))

    title = f"talklike model report: {os.path.basename(os.path.abspath(result['model']['source']))}"
    page = (f"<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{_e(title)}</title>"
            f"<style>{_CSS}</style></head><body>\n<h1>{_e(title)}</h1>\n"
            f"<p class=\"note\">{_e(_provenance(result, include_real))}</p>\n"
            + "\n".join(sections) + "\n</body></html>\n")
    path = os.path.join(out_dir, "report.html")
    with open(path, "w", encoding="utf-8") as out:
        out.write(page)
    return path


# ---- the sections


def _headline(result: dict) -> str:
    counts = result["counts"]
    rows = [
        ("bpc (per character)", _num(result["bpc"]), f"{counts['scored_messages']} held-out messages, "
                                                      f"{counts['scored_chars']} characters; lower is better"),
        ("bpc per message", _num(result.get("bpc_per_message")), "mean of each message's own bpc"),
        ("author_gain_bpc", _num(result["author_gain_bpc"]), "bpc lost when the author is ⟨other⟩"),
        ("context_gain_bpc", _num(result["context_gain_bpc"]), "bpc lost with another conversation as context"),
        ("next_speaker_accuracy", _pct(result["next_speaker_accuracy"]), f"{counts['next_speaker_turns']} turns"),
        ("self_attribution_accuracy", _pct(result.get("self_attribution_accuracy")),
         f"{counts.get('self_attribution_messages', 0)} messages, {counts.get('self_attribution_candidates', 0)} "
         f"candidates each; chance {_pct(result.get('self_attribution_chance'))}"),
        ("… with the speaker prior", _pct(result.get("self_attribution_accuracy_with_turns")),
         "the speaker head's guess of who writes next added"),
        ("style classifier, same candidates", _pct(result.get("real_fidelity_same_candidates")),
         "character n-gram classifier on the same messages: the figure to beat"),
        ("persona_fidelity", _pct(result["persona_fidelity"]),
         f"{counts['generated_replies']} generated replies of {counts['personas_evaluated']} personas"),
        ("real_fidelity", _pct(result["real_fidelity"]), "the classifier on real held-out messages: the ceiling"),
        ("copy_rate", _pct(result.get("copy_rate")),
         f"replies repeating training text with the guard on; off: {_pct(result.get('copy_rate_unguarded'))}"),
    ]
    body = "".join(f"<tr><th>{_e(k)}</th><td class=\"n\">{_e(v)}</td><td>{_e(note)}</td></tr>" for k, v, note in rows)
    personas = counts.get("personas", len(result["model"]["personas"]))
    listed = counts.get("personas_listed", personas)
    scope = (f"{personas:,} personas; figures name the {listed} most active, "
             f"{result.get('rest_label', '⟨rest⟩')} pools the others." if personas > listed
             else f"{personas} personas.")
    return f"<h2>Figures</h2><p>{_e(scope)}</p><table>{body}</table>"


def _curves_section(plt, out_dir: str, rows: list[dict], run_dir: str | None) -> str:
    fig, ax = plt.subplots(figsize=(7, 3.6), dpi=110)
    if not draw_losses(ax, rows):
        plt.close(fig)
        where = f"{run_dir} has no metrics.jsonl" if run_dir else "the model is an exported file"
        return (f"<h2>Training</h2><p class=\"note\">No training curves: {_e(where)}; give the run directory "
                f"with --run RUN_DIR to plot them.</p>")
    _save(plt, fig, out_dir, "curves.png")
    return (f"<h2>Training</h2><p>From {_e(os.path.join(run_dir, 'metrics.jsonl'))}.</p>"
            f"<img src=\"curves.png\" alt=\"training and validation bits per character\">")


def _bpc_section(plt, out_dir: str, result: dict, baseline: dict[str, float]) -> str:
    by_author = result["bpc_by_author"]
    if not by_author:
        return ""
    names = list(by_author)
    y = np.arange(len(names))
    fig, ax = plt.subplots(figsize=(7, 1.2 + 0.28 * len(names)), dpi=110)
    height = 0.4 if baseline else 0.7
    ax.barh(y - (height / 2 if baseline else 0), [by_author[n] for n in names], height, label="model")
    if baseline:
        ax.barh(y + height / 2, [baseline.get(n, math.nan) for n in names], height, label="n-gram baseline")
        ax.legend()
    ax.set_yticks(y, names)
    ax.invert_yaxis()
    ax.set_xlabel("held-out bits per character (lower is better)")
    ax.grid(axis="x", alpha=0.3)
    _save(plt, fig, out_dir, "bpc_by_persona.png")
    note = ("" if baseline else "<p class=\"note\">No baseline given: write_report(baseline_bpc=…) takes persona → "
            "bpc of the character n-gram baseline fitted on the same split.</p>")
    return f"<h2>Bits per character by persona</h2>{note}<img src=\"bpc_by_persona.png\" alt=\"bpc by persona\">"


def _attribution_section(plt, out_dir: str, result: dict) -> str:
    confusion = result.get("self_attribution_confusion") or {}
    labels, counts = confusion.get("labels") or [], np.array(confusion.get("counts") or [], dtype=float)
    if not labels:
        return "<h2>Self-attribution</h2><p class=\"note\">Not measured (fewer than two personas to choose from).</p>"
    shares = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)
    size = 2.5 + 0.3 * len(labels)
    fig, ax = plt.subplots(figsize=(size + 1, size), dpi=110)
    image = ax.imshow(shares, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(len(labels)), labels, rotation=90)
    ax.set_yticks(range(len(labels)), labels)
    ax.set_xlabel("attributed to (fewest bits)")
    ax.set_ylabel("true author")
    if len(labels) <= 12:
        for i in range(len(labels)):
            for j in range(len(labels)):
                if counts[i, j]:
                    ax.text(j, i, int(counts[i, j]), ha="center", va="center",
                            color="white" if shares[i, j] > 0.5 else "black", fontsize=8)
    fig.colorbar(image, ax=ax, fraction=0.046, label="share of the true author's messages")
    _save(plt, fig, out_dir, "attribution.png")
    return ("<h2>Self-attribution</h2><p>Each sampled held-out message scored under its candidate authors after "
            "its real context; rows: who wrote it, columns: whom the model's own bits name.</p>"
            "<img src=\"attribution.png\" alt=\"self-attribution confusion matrix\">")


def _persona_section(result: dict, baseline: dict[str, float], replies: dict[str, list[str]], hidden: int,
                     real: dict[str, list[str]], include_real: bool) -> str:
    names = list(result.get("personas_listed") or result["model"]["personas"])
    head = ("<tr><th>persona</th><th>bpc</th><th>baseline bpc</th><th>self-attribution</th><th>style, same "
            "candidates</th><th>fidelity</th><th>ceiling</th><th>generated replies</th>"
            + ("<th>real held-out messages</th>" if include_real else "") + "</tr>")
    rows = []
    for name in names:
        shown = "".join(f"<li>{_e(text)}</li>" for text in replies.get(name, []))
        cells = [name, _num(result["bpc_by_author"].get(name)), _num(baseline.get(name)),
                 _pct(result.get("self_attribution_by_author", {}).get(name)),
                 _pct(result.get("real_fidelity_same_candidates_by_author", {}).get(name)),
                 _pct(result["persona_fidelity_by_author"].get(name)), _pct(result["real_fidelity_by_author"].get(name))]
        row = "".join(f"<td>{_e(c)}</td>" for c in cells) + f"<td><ul>{shown}</ul></td>"
        if include_real:
            row += "<td><ul>" + "".join(f"<li>{_e(t)}</li>" for t in real.get(name, [])) + "</ul></td>"
        rows.append(f"<tr>{row}</tr>")
    if include_real:
        note = "--include-real: real held-out messages are shown, and generated replies unfiltered."
    else:
        note = (f"Generated replies continue real held-out conversations; {hidden} that repeated a real message "
                f"(or {REAL_SPAN} characters of one) are not shown.")
    return f"<h2>Personas</h2><p class=\"note\">{_e(note)}</p><table>{head}{''.join(rows)}</table>"


# ---- what the page may show


def _shown_replies(replies: dict[str, list[str]], messages: list[Message],
                   include_real: bool) -> tuple[dict[str, list[str]], int]:
    """The generated replies the page shows, and how many were left out for repeating real text."""
    if include_real:
        return replies, 0
    texts = [m.text for m in spoken(messages)]
    whole = {t.strip() for t in texts}
    guard = MemorizationGuard.build(texts, n=REAL_SPAN)
    shown, hidden = {}, 0
    for name, said in replies.items():
        kept = [t for t in said if t.strip() and t.strip() not in whole and not guard.contains_memorized(t)]
        hidden += len(said) - len(kept)
        shown[name] = kept
    return shown, hidden


def _real_examples(messages: list[Message], result: dict, include_real: bool) -> dict[str, list[str]]:
    """A few real held-out messages per listed persona (the latest ones), only with include_real."""
    if not include_real:
        return {}
    _, held = split_messages(messages, result["settings"]["val_fraction"])
    listed = set(result.get("personas_listed") or [])
    examples: dict[str, list[str]] = {}
    for m in reversed(spoken(held)):
        if m.author in listed and len(examples.setdefault(m.author, [])) < REAL_EXAMPLES:
            examples[m.author].append(m.text)
    return examples


# ---- helpers


def _pyplot():
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise UserError("--report needs matplotlib (pip install 'talklike[train]')") from None
    return plt


def _run_dir_of(source: str) -> str | None:
    """The run directory a model came from: itself, or the run above checkpoints/NAME.pt."""
    if os.path.isdir(source):
        return source
    parent = os.path.dirname(os.path.abspath(source))
    if os.path.basename(parent) == "checkpoints":
        return os.path.dirname(parent)
    return None


def _metrics_rows(run_dir: str | None) -> list[dict]:
    return MetricsLog(run_dir).rows() if run_dir else []


def _save(plt, fig, out_dir: str, name: str) -> None:
    fig.tight_layout()
    fig.savefig(os.path.join(out_dir, name))
    plt.close(fig)


def _provenance(result: dict, include_real: bool) -> str:
    when = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    kind = result["model"]["kind"]
    return (f"{kind} {result['model']['source']}, evaluated in {result['seconds']:.0f} s, written {when}. "
            + ("Contains real messages (--include-real)." if include_real else "No real message text."))


def _e(value) -> str:
    return html.escape(str(value))


def _num(value, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    return f"{value:.{digits}f}"


def _pct(value) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    return f"{100 * value:.1f}%"


_CSS = """
body { font-family: system-ui, sans-serif; max-width: 70rem; margin: 2rem auto; padding: 0 1rem; color: #222; }
table { border-collapse: collapse; margin: 0.5rem 0 1.5rem; }
th, td { border-bottom: 1px solid #ddd; padding: 0.3rem 0.6rem; text-align: left; vertical-align: top; }
td.n { font-variant-numeric: tabular-nums; text-align: right; }
ul { margin: 0; padding-left: 1.1rem; }
img { max-width: 100%; }
.note { color: #666; }
"""

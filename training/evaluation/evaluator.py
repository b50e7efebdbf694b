"""`evaluate()`: load the model and the corpus, find the held-out part, and take every measure on it."""

from __future__ import annotations

import os
import time
from dataclasses import asdict, replace

import numpy as np

from model.stream import DEFAULT_SESSION_GAP
from talklike.errors import UserError
from training.corpus import Message, read_corpus
from training.evaluation.fidelity import persona_fidelity
from training.evaluation.held_out import held_out_part
from training.evaluation.measures import author_gain, bpc_and_next_speaker, context_gain, gain_sample
from training.evaluation.scoring import LoadedModel, load_model
from training.evaluation.settings import EvalSettings


def evaluate(model_source, corpus_path, settings: EvalSettings | None = None, **overrides) -> dict:
    """Evaluate a model (artifact .pt, checkpoint file or run directory) on a corpus's held-out part.

    Returns a dict with bpc, bpc_by_author, author_gain_bpc, context_gain_bpc, next_speaker_accuracy,
    persona_fidelity, real_fidelity (each None where the corpus cannot support it), plus per-persona
    fidelity, counts and the settings used. Never includes message text.
    """
    settings = replace(settings or EvalSettings(), **overrides)  # an unknown setting is a TypeError
    started = time.perf_counter()
    model = load_model(model_source, settings.device)
    corpus_path = os.fspath(corpus_path)
    messages = _read_corpus(corpus_path, model)
    val_fraction = settings.val_fraction
    if val_fraction is None:
        val_fraction = float(model.train_config.get("val_fraction", 0.1))
    gap = settings.session_gap
    if gap is None:
        gap = float(model.train_config.get("session_gap", DEFAULT_SESSION_GAP))
    settings = replace(settings, val_fraction=val_fraction, session_gap=gap)

    train, held_messages, held = held_out_part(messages, val_fraction, model.authors, gap)
    if not held.items:
        raise UserError(f"{corpus_path}: the held-out part is empty (too few messages per conversation to "
                        f"hold out {val_fraction:.0%})")
    rng = np.random.default_rng(settings.seed)
    module, vocab = model.module, model.vocab
    figures = bpc_and_next_speaker(module, vocab, held, settings, rng)
    sample = gain_sample(module, vocab, held, figures.scored, settings, rng)
    by_author = author_gain(module, vocab, held, sample, settings)
    by_context = context_gain(module, vocab, held, sample, settings, rng)
    fidelity = persona_fidelity(model, train, held_messages, held, settings, rng)

    return {
        "bpc": figures.bpc,
        "bpc_by_author": figures.bpc_by_author,
        "author_gain_bpc": by_author.bpc,
        "context_gain_bpc": by_context.bpc,
        "next_speaker_accuracy": figures.next_speaker_accuracy,
        "persona_fidelity": fidelity["persona_fidelity"],
        "real_fidelity": fidelity["real_fidelity"],
        "persona_fidelity_by_author": fidelity["by_persona"],
        "real_fidelity_by_author": fidelity["real_by_persona"],
        "fidelity_chance": 1.0 / fidelity["classes"] if fidelity["classes"] else None,
        "counts": {
            "held_out_messages": len(held.items),
            "scored_messages": len(figures.scored),
            "scored_chars": figures.scored_chars,
            "gain_messages": len(sample.chosen),
            "author_gain_messages": by_author.messages,
            "context_gain_messages": by_context.messages,
            "context_gain_same_conversation": by_context.same_conversation,
            "next_speaker_turns": figures.turns,
            "personas_evaluated": fidelity["classes"],
            "generated_replies": fidelity["generated"],
            "real_fidelity_messages": fidelity["real_messages"],
        },
        "model": {"source": os.fspath(model_source), "kind": model.kind, "personas": list(model.authors.names[1:])},
        "settings": asdict(settings),
        "seconds": round(time.perf_counter() - started, 3),
    }


def _read_corpus(corpus_path: str, model: LoadedModel) -> list[Message]:
    """The corpus's messages, refused when it is missing, empty, or shares no author with the model's personas."""
    if not os.path.isfile(corpus_path):
        raise UserError(f"{corpus_path}: no such corpus file")
    messages = list(read_corpus(corpus_path))
    if not messages:
        raise UserError(f"{corpus_path}: the corpus is empty")
    personas = list(model.authors.names[1:])
    corpus_authors = {m.author for m in messages}
    if not corpus_authors & set(personas):
        shown = ", ".join(personas[:5]) + (", ..." if len(personas) > 5 else "")
        raise UserError(f"{corpus_path}: none of the corpus's {len(corpus_authors)} authors is a persona of "
                        f"this model ({shown}); evaluate on the corpus the model was trained on")
    return messages

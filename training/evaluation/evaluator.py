"""`evaluate()`: load the model and the corpus, find the held-out part, and take every measure on it."""

from __future__ import annotations

import os
import time
from dataclasses import asdict, replace

import numpy as np

from model.guard import MemorizationGuard
from model.stream import DEFAULT_SESSION_GAP
from talklike.errors import UserError
from training.corpus import Message, read_corpus
from training.dataset import guard_texts
from training.evaluation.copy_rate import CopyRate
from training.evaluation.fidelity import fit_classifier, persona_fidelity
from training.evaluation.held_out import held_out_part
from training.evaluation.measures import author_gain, bpc_and_next_speaker, context_gain, gain_sample
from training.evaluation.personas import REST, Personas
from training.evaluation.scoring import LoadedModel, load_model
from training.evaluation.self_attribution import self_attribution
from training.evaluation.settings import EvalSettings


def evaluate(model_source, corpus_path, settings: EvalSettings | None = None, **overrides) -> dict:
    """Evaluate a model (artifact .pt, checkpoint file or run directory) on a corpus's held-out part.

    Returns a dict with bpc (per character and per message), bpc_by_author, author_gain_bpc, context_gain_bpc,
    next_speaker_accuracy, self_attribution_accuracy (and with the speaker head's prior), the style classifier
    on the same messages and candidates (real_fidelity_same_candidates), persona_fidelity, real_fidelity, the
    generated replies' copy_rate with the model's guard on (and copy_rate_unguarded) (each None where the corpus
    cannot support it), per-persona breakdowns (the `top_personas` most active by name,
    ⟨rest⟩ for the others), counts and the settings used. Never includes real message text; generated
    replies only when `keep_replies` asks for them.
    """
    settings = replace(settings or EvalSettings(), **overrides)  # an unknown setting is a TypeError
    started = time.perf_counter()
    model = load_model(model_source, settings.device)
    corpus_path = os.fspath(corpus_path)
    messages = _read_corpus(corpus_path, model)
    settings = _as_trained(settings, model)
    train, held_messages, held = held_out_part(messages, settings.val_fraction, model.authors, settings.session_gap)
    if not held.items:
        raise UserError(f"{corpus_path}: the held-out part is empty (too few messages per conversation to "
                        f"hold out {settings.val_fraction:.0%})")
    rng = np.random.default_rng(settings.seed)
    module, vocab = model.module, model.vocab
    personas = Personas.of(model.authors, train, settings.top_personas)
    clock = _Clock()
    figures = clock("bpc", bpc_and_next_speaker(module, vocab, held, personas, settings, rng))
    sample = gain_sample(module, vocab, held, figures.scored, settings, rng)
    by_author = author_gain(module, vocab, held, sample, settings)
    by_context = clock("gains", context_gain(module, vocab, held, sample, settings, rng))
    # One classifier over every persona with enough training messages (its table is sparse: the corpus's size,
    # not personas × buckets); fidelity asks it about the top personas only, attribution about the candidates.
    eligible = personas.with_messages(settings.min_train_messages)
    classifier = clock("classifier", fit_classifier(train, eligible))
    classes = [name for name in personas.top if name in set(eligible)]
    # The copy detector holds the training part as the guard would, whatever guard the model ships.
    detector = MemorizationGuard.build(guard_texts(train), n=settings.copy_span) if settings.samples_per_persona else None
    fidelity = clock("fidelity", persona_fidelity(model, classifier, classes, held_messages, held, settings, rng,
                                                  detector))
    attribution = clock("self_attribution", self_attribution(module, vocab, held, personas, classifier, settings,
                                                             rng))
    result = _result(model, settings, personas, held, figures, sample, by_author, by_context, fidelity, attribution)
    result["counts"]["self_attribution_personas"] = len(eligible)
    result["model"]["source"] = os.fspath(model_source)
    result["seconds"] = round(time.perf_counter() - started, 3)
    result["seconds_by_measure"] = clock.seconds
    return result


def _as_trained(settings: EvalSettings, model: LoadedModel) -> EvalSettings:
    """The settings with the run's own held-out fraction and session gap where they were left open."""
    val_fraction, gap = settings.val_fraction, settings.session_gap
    if val_fraction is None:
        val_fraction = float(model.train_config.get("val_fraction", 0.1))
    if gap is None:
        gap = float(model.train_config.get("session_gap", DEFAULT_SESSION_GAP))
    return replace(settings, val_fraction=val_fraction, session_gap=gap)


def _result(model, settings, personas, held, figures, sample, by_author, by_context, fidelity, attribution) -> dict:
    """The measures as one JSON-ready dict (no message text; generated replies only when asked for)."""
    copy = fidelity.get("copy") or CopyRate.of_nothing(model.guard)
    result = {
        "bpc": figures.bpc,
        "bpc_per_message": figures.bpc_per_message,
        "bpc_by_author": figures.bpc_by_author,
        "author_gain_bpc": by_author.bpc,
        "author_gain_bpc_per_message": by_author.bpc_per_message,
        "context_gain_bpc": by_context.bpc,
        "context_gain_bpc_per_message": by_context.bpc_per_message,
        "next_speaker_accuracy": figures.next_speaker_accuracy,
        "self_attribution_accuracy": attribution.accuracy,
        "self_attribution_accuracy_with_turns": attribution.accuracy_with_turns,
        "real_fidelity_same_candidates": attribution.style_accuracy,
        "self_attribution_chance": attribution.chance,
        "self_attribution_by_author": attribution.by_persona,
        "real_fidelity_same_candidates_by_author": attribution.style_by_persona,
        "self_attribution_confusion": attribution.confusion,
        "persona_fidelity": fidelity["persona_fidelity"],
        "real_fidelity": fidelity["real_fidelity"],
        "persona_fidelity_by_author": fidelity["by_persona"],
        "real_fidelity_by_author": fidelity["real_by_persona"],
        "fidelity_chance": 1.0 / fidelity["classes"] if fidelity["classes"] else None,
        "copy_rate": copy.guarded,
        "copy_rate_unguarded": copy.unguarded,
        "copy_guard": copy.guard,
        "personas_listed": personas.top,
        "rest_label": REST,
        "counts": {
            "held_out_messages": len(held.items),
            "scored_messages": len(figures.scored),
            "scored_chars": figures.scored_chars,
            "gain_messages": len(sample.chosen),
            "author_gain_messages": by_author.messages,
            "context_gain_messages": by_context.messages,
            "context_gain_same_conversation": by_context.same_conversation,
            "next_speaker_turns": figures.turns,
            "personas": len(model.authors) - 1,
            "personas_listed": len(personas.top),
            "personas_evaluated": fidelity["classes"],
            "generated_replies": fidelity["generated"],
            "copy_resampled": copy.resampled,
            "copy_cut": copy.cut,
            "real_fidelity_messages": fidelity["real_messages"],
            "self_attribution_messages": attribution.messages,
            "self_attribution_candidates": attribution.candidates,
        },
        "model": {"kind": model.kind, "personas": list(model.authors.names[1:])},
        "settings": asdict(settings),
    }
    if settings.keep_replies > 0:
        result["replies_by_persona"] = fidelity["replies"]  # generated text: asked for, never by default
    return result


class _Clock:
    """Seconds each measure took, for the result: `value = clock(name, measure(...))` times since the last."""

    def __init__(self):
        self.seconds: dict[str, float] = {}
        self._last = time.perf_counter()

    def __call__(self, name: str, value):
        now = time.perf_counter()
        self.seconds[name] = round(now - self._last, 3)
        self._last = now
        return value


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

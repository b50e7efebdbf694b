"""The knobs of one evaluation (`talklike evaluate` sets a few of them)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class EvalSettings:
    """Knobs of one evaluation; written into the result so figures can be reproduced."""

    context_messages: int = 8  # k: real preceding messages read before scored messages
    segment_messages: int = 16  # held-out messages scored per sequence for bpc (after k of context)
    max_messages: int = 20000  # held-out messages scored for bpc at most (an even, seeded sample beyond)
    gain_messages: int = 256  # held-out messages scored one by one for author and context gains
    attribution_messages: int = 256  # held-out messages (by personas) attributed for self_attribution_accuracy
    attribution_candidates: int = 64  # authors each is scored under: every persona when there are no more
    top_personas: int = 32  # per-persona figures name the most active N (training messages); ⟨rest⟩ pools the others
    samples_per_persona: int = 24  # generated replies per persona (of the top personas) for persona_fidelity
    generation_contexts: int = 6  # distinct real held-out contexts the replies continue from
    keep_replies: int = 0  # generated replies per persona returned in the result (for the report; 0: none)
    temperature: float = 0.8
    top_k: int = 0
    top_p: float = 1.0
    max_chars: int = 200  # longest generated reply
    guard_retries: int = 3  # resamples of a reply that copies training text before it is cut (the engine's)
    copy_span: int = 60  # verbatim span that counts as a copy for copy_rate (whole messages: 20+ characters)
    min_train_messages: int = 5  # a persona needs this many training messages to be a classifier class
    batch_tokens: int = 32768  # padded steps per batch of scored sequences
    logit_mib: int = 256  # logits one forward pass may hold: (B,T,V) + (B,T,A) bounded whatever the personas
    seed: int = 0
    val_fraction: float | None = None  # None: the fraction the model was trained with (else 0.1)
    session_gap: float | None = None  # None: the gap the model was trained with (else 6 h)
    device: str = "cpu"

"""Persona fidelity: replies generated as each persona, attributed by an independent style classifier.

The classifier (training/style_classifier.py) learns from the real training messages; its accuracy on the
real held-out messages is the ceiling to read the generated replies' figure against. Replies are generated
for the most active personas only (`top_personas`): generating for each of thousands of IRC nicks would
take hours and say little more.
"""

from __future__ import annotations

from collections import Counter
from contextlib import contextmanager

import numpy as np
import torch

from model.guard import MemorizationGuard
from training.corpus import Message
from training.evaluation.copy_rate import copy_rate
from training.evaluation.held_out import HeldOut, in_stream
from training.evaluation.scoring import LoadedModel
from training.evaluation.settings import EvalSettings
from training.style_classifier import StyleClassifier


def fit_classifier(train: list[Message], names: list[str]) -> StyleClassifier | None:
    """The style classifier over the real training messages of `names` (None for fewer than two)."""
    if len(names) < 2:
        return None
    known = set(names)
    examples = [m for m in train if in_stream(m) and m.author in known]
    return StyleClassifier().fit([m.text for m in examples], [m.author for m in examples])


def persona_fidelity(model: LoadedModel, classifier: StyleClassifier | None, classes: list[str],
                     held_messages: list[Message], held: HeldOut, settings: EvalSettings,
                     rng: np.random.Generator, detector: MemorizationGuard | None = None) -> dict:
    """Generate replies as each persona of `classes` (the most active ones that have enough training messages)
    from real held-out contexts, and ask the style classifier which of `classes` wrote them.

    The classifier's accuracy on real held-out messages of the same personas, among the same classes, is the
    ceiling to read the figure against. With `keep_replies`, the first few replies per persona come back
    (generated text, for the report; never real messages). With a `detector` (training text hashed), the
    replies' copy rate with the model's guard off and on comes back under "copy".
    """
    result = {"persona_fidelity": None, "real_fidelity": None, "by_persona": {}, "real_by_persona": {},
              "generated": 0, "real_messages": 0, "classes": 0, "replies": {}}
    if classifier is None or len(classes) < 2:
        return result  # attribution needs at least two candidate authors
    known = set(classes)
    result["classes"] = len(classes)
    real = [m for m in held_messages if in_stream(m) and m.author in known]
    if real:
        predicted = classifier.predict([m.text for m in real], among=classes)
        result["real_fidelity"], result["real_by_persona"] = _accuracy(predicted, [m.author for m in real])
        result["real_messages"] = len(real)
    if settings.samples_per_persona <= 0:
        return result

    from model.generation import Generator

    generator = Generator(model.network, model.vocab, model.authors, experts=model.experts)
    n_contexts = max(1, min(settings.generation_contexts, settings.samples_per_persona, len(held.items)))
    states = []
    for index in sorted(rng.choice(len(held.items), n_contexts, replace=False)):
        item = held.items[index]
        state = generator.init_state(1)
        # The context ends with the held-out message itself: the persona answers it.
        for author_id, text, session, _ in held.context(item, settings.context_messages) + [held.entry(item.conv, item.pos)]:
            state = generator.feed(state, author_id, text, session=session)
        states.append(state)
    share = [settings.samples_per_persona // n_contexts + (j < settings.samples_per_persona % n_contexts)
             for j in range(n_contexts)]
    generated: list[str] = []
    wanted: list[str] = []
    origins: list[tuple[int, int, int]] = []  # (persona id, context, seed) of each reply, to resample it
    sampling = dict(temperature=settings.temperature, top_k=settings.top_k, top_p=settings.top_p, min_chars=1,
                    max_chars=settings.max_chars)

    def regenerate(i: int, attempt: int) -> str:
        persona_id, j, seed = origins[i]
        return generator.reply(states[j], persona_id, n=1, seed=seed * 7 + 1_000_003 * attempt + i, **sampling)[0]

    with one_thread_on_cpu(settings.device):
        for name in classes:
            persona_id = model.authors.id_of(name)
            for j, state in enumerate(states):
                if share[j] == 0:
                    continue
                seed = settings.seed * 100_003 + persona_id * 101 + j
                replies = generator.reply(state, persona_id, n=share[j], seed=seed, **sampling)
                generated += replies
                wanted += [name] * len(replies)
                origins += [(persona_id, j, seed)] * len(replies)
                kept = result["replies"].setdefault(name, [])
                kept += replies[: max(0, settings.keep_replies - len(kept))]
    result["persona_fidelity"], result["by_persona"] = _accuracy(classifier.predict(generated, among=classes), wanted)
    result["generated"] = len(generated)
    if detector is not None:
        with one_thread_on_cpu(settings.device):
            result["copy"] = copy_rate(generated, regenerate, detector, model.guard, settings.guard_retries)
    return result


@contextmanager
def one_thread_on_cpu(device: str):
    """Run one-step generation on one CPU thread, then restore the thread count.

    A step of a few samples is too small to split across cores: the threads mostly wait for each other,
    and on a shared machine a descheduled thread stalls every step (measured here: 15× slower with two
    threads than with one while other jobs ran). Batched scoring keeps all threads.
    """
    if not str(device).startswith("cpu"):
        yield
        return
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def _accuracy(predicted: list[str], truth: list[str]) -> tuple[float, dict[str, float]]:
    """Overall accuracy and accuracy per true label."""
    right: Counter = Counter()
    total: Counter = Counter()
    for p, t in zip(predicted, truth, strict=True):
        total[t] += 1
        right[t] += int(p == t)
    overall = sum(right.values()) / max(1, sum(total.values()))
    return overall, {name: right[name] / total[name] for name in sorted(total)}

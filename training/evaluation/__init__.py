"""Imitation quality on the held-out part of a corpus: bits per character, what author and context are
worth, next-speaker accuracy, and persona fidelity judged by an independent style classifier.

The held-out part is the one training held out (`training.dataset.split_messages` with the run's
fraction): the latest messages of each conversation. Sequences start from a fresh state with the k real
messages before the scored ones as context (read, not scored), and run through the model in padded
batches (scoring.py):

- `bpc`, `bpc_by_author`, `next_speaker_accuracy`: runs of up to 16 consecutive held-out messages, each
  run after its k preceding messages (so every message sees at least k messages of real context);
- `author_gain_bpc`: a seeded sample of held-out messages, one per sequence after exactly its k preceding
  messages, scored under its real author and under ⟨other⟩: the difference;
- `context_gain_bpc`: the same messages after k messages from another conversation (or a distant part of
  the only one) instead of their own: the difference;
- `self_attribution_accuracy`: a seeded sample of held-out messages, each after its k preceding messages,
  scored under candidate authors: how often the true one gives the fewest bits; the style classifier on the
  same messages and candidates beside it (`real_fidelity_same_candidates`).

bpc is also given per message (the mean of each message's own bits per character), for the gains too.
Per-persona figures name the `top_personas` most active personas and pool the others as ⟨rest⟩; memory
stays bounded at thousands of personas (passes of bounded logits, a sparse classifier table).

Only a message's own characters are scored (not ⟨bos⟩/⟨eos⟩/⟨session⟩), so every condition counts the
same targets; the trainer's validation bpc also scores the special steps and reads longer context, so it
differs a little.

The package: `held_out` (the split, contexts, sequences), `scoring` (the model, batched scoring), `personas`
(who the figures name), `measures` (bpc and next speaker, the author and context gains), `fidelity` (persona
fidelity), `self_attribution`, `evaluator` (`evaluate()`, which takes them all).
"""

from training.evaluation.evaluator import evaluate
from training.evaluation.settings import EvalSettings

__all__ = ["EvalSettings", "evaluate"]

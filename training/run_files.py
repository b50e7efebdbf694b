"""The run directory on disk: creating it, atomic writes, the saved config a resume starts from, the
metrics log, the loss plot; and reading the corpus a run trains on.

Layout (docs/training.md): config.json, data.json, guard.bin, experts.npz, metrics.jsonl, loss.png, checkpoints/{best,last}.pt
(training/checkpoint.py), samples/step_NNNNNNN.txt.
"""

from __future__ import annotations

import json
import os
import tempfile
from typing import Any

from model.experts import NgramExperts
from talklike.errors import UserError
from training.checkpoint import checkpoint_path
from training.corpus import Message, read_corpus
from training.dataset import spoken
from training.train_config import RESUMABLE_OVERRIDES, TrainConfig

EXPERTS_FILE = "experts.npz"


def write_text_atomic(path: str, text: str) -> None:
    """Write `text` to a temporary file beside `path`, then rename it over `path`: readers see all or nothing."""
    write_bytes_atomic(path, text.encode("utf-8"))


def write_bytes_atomic(path: str, data: bytes) -> None:
    """`write_text_atomic` for bytes."""
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=directory)
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def experts_path(run_dir: str) -> str:
    """Where a run keeps the counts of its n-gram experts."""
    return os.path.join(run_dir, EXPERTS_FILE)


def load_run_experts(run_dir: str) -> NgramExperts | None:
    """The run's n-gram experts, or None for a run without them."""
    path = experts_path(run_dir)
    if not os.path.isfile(path):
        return None
    with open(path, "rb") as handle:
        try:
            return NgramExperts.from_bytes(handle.read())
        except ValueError as err:
            raise UserError(f"{path}: {err}") from None


def write_json(path: str, obj: Any) -> None:
    write_text_atomic(path, json.dumps(obj, ensure_ascii=False, indent=2) + "\n")


def prepare_run_dir(run_dir: str, resume: bool) -> None:
    """Create the run directory and prove it is writable; refuse to train over an existing run."""
    if not run_dir:
        raise UserError("no run directory given (-o RUN_DIR)")
    if os.path.exists(run_dir) and not os.path.isdir(run_dir):
        raise UserError(f"{run_dir}: exists and is not a directory")
    try:
        for sub in ("", "checkpoints", "samples"):
            os.makedirs(os.path.join(run_dir, sub), exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".probe-", dir=os.path.join(run_dir, "checkpoints"))
        os.close(fd)
        os.unlink(probe)
    except OSError as err:
        raise UserError(f"{run_dir}: cannot write the run directory ({err.strerror})") from None
    has_run = os.path.exists(checkpoint_path(run_dir, "last"))
    if resume and not has_run:
        raise UserError(f"{run_dir}: nothing to resume (no checkpoints/last.pt)")
    if not resume and has_run:
        raise UserError(f"{run_dir}: already holds a training run; add --resume to continue it or choose another -o")


def resume_config(run_dir: str, overrides: dict[str, Any]) -> TrainConfig:
    """The saved config of the run in `run_dir`, with the few settings a resumed run may change."""
    path = os.path.join(run_dir, "config.json")
    try:
        with open(path, encoding="utf-8") as handle:
            saved = json.load(handle)["train"]
    except FileNotFoundError:
        raise UserError(f"{run_dir}: nothing to resume (no config.json)") from None
    except (OSError, ValueError, KeyError, TypeError):
        raise UserError(f"{path}: damaged run config") from None
    config = TrainConfig.from_dict(saved)
    for key, value in overrides.items():
        if value is None or key in ("corpus", "run_dir"):
            continue
        if key not in RESUMABLE_OVERRIDES and value != saved.get(key):
            raise UserError(f"--{key.replace('_', '-')} differs from the run being resumed "
                            f"({saved.get(key)!r}); start a new run to change it")
        setattr(config, key, value)
    if overrides.get("corpus"):
        config.corpus = overrides["corpus"]
    config.run_dir = run_dir
    return config


def load_messages(path: str) -> list[Message]:
    if not path:
        raise UserError("no corpus given")
    if os.path.isdir(path):
        raise UserError(f"{path}: is a directory; give the corpus file (talklike import writes corpus.jsonl)")
    messages = list(read_corpus(path))
    if not messages:
        raise UserError(f"{path}: the corpus is empty")
    talk = spoken(messages)
    if not talk:
        raise UserError(f"{path}: the corpus has no text messages to learn from")
    people = {m.author for m in talk}
    if len(people) < 2:
        raise UserError(f"{path}: the corpus has one author ({next(iter(people))}); "
                        "talklike learns from conversations between at least two people")
    return messages


class MetricsLog:
    """run_dir/metrics.jsonl: one JSON row per log step (`"kind": "train"`) and per evaluation (`"kind": "eval"`),
    oldest first. Rows are flushed as they are recorded; nothing is written until `open` (rank 0 alone opens it)."""

    def __init__(self, run_dir: str):
        self.path = os.path.join(run_dir, "metrics.jsonl")
        self._file = None

    def rows(self) -> list[dict]:
        """The rows on disk (train rows and eval rows), oldest first."""
        if not os.path.exists(self.path):
            return []
        rows = []
        with open(self.path, encoding="utf-8") as handle:
            for line in handle:
                try:
                    rows.append(json.loads(line))
                except json.JSONDecodeError:  # blank, or the half line of a run killed mid-write
                    continue
        return rows

    def open(self, resume_step: int | None = None) -> MetricsLog:
        """Start a new log, or (resuming at `resume_step`) continue the old one from that step."""
        if resume_step is not None:
            # Rows logged after the checkpoint (a run killed without saving) are about to be redone: drop them.
            kept = [row for row in self.rows() if row.get("step", 0) <= resume_step]
            write_text_atomic(self.path, "".join(_json_line(row) for row in kept))
        self._file = open(self.path, "w" if resume_step is None else "a", encoding="utf-8")
        return self

    def record(self, row: dict) -> None:
        if self._file is not None:
            self._file.write(_json_line(row))
            self._file.flush()

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


def _json_line(row: dict) -> str:
    return json.dumps(row, ensure_ascii=False) + "\n"


def plot_losses(run_dir: str, rows: list[dict]) -> str | None:
    """loss.png: training and validation bits per character against steps; None when matplotlib is missing."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    fig, ax = plt.subplots(figsize=(7, 4), dpi=110)
    draw_losses(ax, rows)
    ax.set_title(os.path.basename(os.path.abspath(run_dir)))
    fig.tight_layout()
    path = os.path.join(run_dir, "loss.png")
    fig.savefig(path)
    plt.close(fig)
    return path


def draw_losses(ax, rows: list[dict]) -> bool:
    """Training and validation bits per character of metrics rows against steps on a matplotlib axis; False
    when the rows hold neither."""
    train = [(r["step"], r["train_bpc"]) for r in rows if r.get("kind") == "train" and "train_bpc" in r]
    val = [(r["step"], r["val_bpc"]) for r in rows if r.get("kind") == "eval" and r.get("val_bpc") is not None]
    if train:
        ax.plot(*zip(*train, strict=True), label="train", linewidth=1)
    if val:
        ax.plot(*zip(*val, strict=True), label="validation", marker="o", markersize=3)
    ax.set_xlabel("step")
    ax.set_ylabel("bits per character")
    ax.grid(alpha=0.3)
    if train or val:
        ax.legend()
    return bool(train or val)

"""Training checkpoints: everything needed to resume a run exactly, in a file `torch.load(weights_only=True)` reads.

Only tensors, numbers, strings, lists and dicts go in (no pickled objects), so loading a checkpoint
never runs code from the file. Format 2 holds the training loop's state as one entry, "loop"
(training/loop_state.py); a format-1 checkpoint, which held those keys at the top level, is read as format 2.
"""

from __future__ import annotations

import os
import pickle
import tempfile
import zipfile

import torch

from model.config import ModelConfig
from model.network import CharLSTM
from model.vocab import AuthorTable, Vocabulary
from talklike.errors import UserError

CHECKPOINT_DIR = "checkpoints"
CHECKPOINT_FORMAT = 2
# The loop's state, at the top level of a format-1 checkpoint.
FORMAT_1_LOOP_KEYS = ("step", "epoch", "chunk", "elapsed", "best_val_bpc", "best_step", "evals_since_best",
                      "stream_state", "rng")


def checkpoint_path(run_dir: str | os.PathLike, which: str = "best") -> str:
    """run_dir/checkpoints/{best,last}.pt"""
    if which not in ("best", "last"):
        raise UserError(f"unknown checkpoint {which!r} (choose best or last)")
    return os.path.join(os.fspath(run_dir), CHECKPOINT_DIR, f"{which}.pt")


def save_checkpoint(path: str | os.PathLike, state: dict) -> None:
    """Write `state` atomically: a temp file in the same directory, then rename over the target."""
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".ckpt-", suffix=".tmp", dir=directory)
    os.close(fd)
    try:
        torch.save({"format": CHECKPOINT_FORMAT, **state}, tmp)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def load_checkpoint(run_dir_or_file: str | os.PathLike, which: str = "best", map_location: str = "cpu") -> dict:
    """A checkpoint from a file, or from a run directory (its best, falling back to last)."""
    path = os.fspath(run_dir_or_file)
    if os.path.isdir(path):
        candidates = [checkpoint_path(path, which)] + ([checkpoint_path(path, "last")] if which == "best" else [])
        found = [p for p in candidates if os.path.exists(p)]
        if not found:
            raise UserError(f"{path}: no checkpoint in {CHECKPOINT_DIR}/ (has this run trained yet?)")
        path = found[0]
    if not os.path.exists(path):
        raise UserError(f"{path}: no such checkpoint")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, zipfile.BadZipFile, ValueError, OSError) as err:
        first = (str(err).strip().splitlines() or [type(err).__name__])[0]
        raise UserError(f"{path}: not a talklike checkpoint or damaged ({first[:120]})") from None
    if not isinstance(state, dict) or "model" not in state or "model_config" not in state:
        raise UserError(f"{path}: not a talklike checkpoint")
    if state.get("format", 0) > CHECKPOINT_FORMAT:
        raise UserError(f"{path}: checkpoint made by a newer talklike (format {state['format']})")
    if state.get("format", 0) < 2 and "loop" not in state:
        state["loop"] = {key: state.pop(key) for key in FORMAT_1_LOOP_KEYS if key in state}
        state["format"] = CHECKPOINT_FORMAT
    state["path"] = path
    return state


def model_from_checkpoint(ckpt: dict) -> tuple[CharLSTM, Vocabulary, AuthorTable]:
    """The eager model (eval mode, on CPU unless the tensors were mapped elsewhere) and its tables."""
    config = ModelConfig.from_dict(ckpt["model_config"])
    model = CharLSTM(config)
    model.load_state_dict(ckpt["model"])
    model.eval()
    return model, Vocabulary.from_dict(ckpt["vocab"]), AuthorTable.from_dict(ckpt["authors"])

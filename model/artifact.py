"""The artifact: one TorchScript file with everything a server needs inside it.

Layout: the scripted `CharLSTM` (forward + init_state), and in `_extra_files`
`talklike.json` (format version, vocabulary, authors, model config, model card, quantization) and
`guard.bin` (the memorization guard) and, for a model with n-gram experts, `experts.npz` (their counts).
Reading it back needs only torch; `load_artifact` adds the checks
and the typed view.
"""

from __future__ import annotations

import copy
import json
import os
import tempfile
import warnings
import zipfile
from dataclasses import dataclass, field

import torch
from torch import nn

from model.config import ModelConfig
from model.experts import NgramExperts
from model.guard import MemorizationGuard
from model.network import CharLSTM
from model.vocab import AuthorTable, Vocabulary
from talklike.errors import UserError

FORMAT_VERSION = 1
FORMAT_NAME = "talklike"
META_FILE = "talklike.json"
GUARD_FILE = "guard.bin"
EXPERTS_FILE = "experts.npz"
QUANTIZATIONS = ("int8",)


class ArtifactError(UserError):
    """A model file that cannot be used: missing, truncated, foreign, or from a newer talklike."""


@dataclass
class Artifact:
    module: torch.jit.ScriptModule  # forward(chars, authors, h, c) and init_state(batch)
    vocab: Vocabulary
    authors: AuthorTable
    config: ModelConfig
    card: dict = field(default_factory=dict)
    guard: MemorizationGuard | None = None
    experts: NgramExperts | None = None
    path: str = ""
    size_bytes: int = 0
    quantized: str | None = None

    @property
    def personas(self) -> list[str]:
        """Every author the model can write as (all but ⟨other⟩)."""
        return self.authors.personas


def quantize_int8(model: CharLSTM) -> nn.Module:
    """Dynamic int8 quantization of the LSTM and the heads (weights int8, activations float)."""
    model = copy.deepcopy(model).cpu().eval()
    with warnings.catch_warnings():
        # torch.ao.quantization announces its deprecation on every call; export checks the result itself.
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", UserWarning)
        return torch.ao.quantization.quantize_dynamic(model, {nn.LSTM, nn.Linear}, dtype=torch.qint8)


def script_model(model: CharLSTM, quantize: str | None = None) -> torch.jit.ScriptModule:
    """The TorchScript module that goes into the artifact (on CPU, in eval mode)."""
    if quantize is not None and quantize not in QUANTIZATIONS:
        raise ArtifactError(f"unknown quantization {quantize!r} (choose from {', '.join(QUANTIZATIONS)})")
    module = quantize_int8(model) if quantize == "int8" else copy.deepcopy(model).cpu().eval()
    return torch.jit.script(module)


def save_artifact(path: str | os.PathLike, model: CharLSTM, vocab: Vocabulary, authors: AuthorTable,
                  config: ModelConfig, card: dict, guard: MemorizationGuard | None,
                  quantize: str | None = None, experts: NgramExperts | None = None) -> int:
    """Script `model` and write it with its metadata to `path` atomically; returns the file size."""
    path = os.fspath(path)
    scripted = script_model(model, quantize)
    meta = {
        "format": FORMAT_NAME,
        "format_version": FORMAT_VERSION,
        "vocab": vocab.to_dict(),
        "authors": authors.to_dict(),
        "config": config.to_dict(),
        "card": card,
        "quantized": quantize,
        "guard": guard is not None,
    }
    extra: dict[str, str | bytes] = {META_FILE: json.dumps(meta, ensure_ascii=False)}
    if guard is not None:
        extra[GUARD_FILE] = guard.to_bytes()
    if config.experts:
        if experts is None:
            raise ArtifactError(f"{path}: the model writes on top of n-gram experts, and none were given")
        extra[EXPERTS_FILE] = experts.to_bytes()
    directory = os.path.dirname(os.path.abspath(path))
    try:
        os.makedirs(directory, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".model-", suffix=".tmp", dir=directory)
        os.close(fd)
    except OSError as err:
        raise ArtifactError(f"{path}: cannot write model file ({err.strerror})") from None
    try:
        torch.jit.save(scripted, tmp, _extra_files=extra)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return os.path.getsize(path)


def _read_meta(path: str) -> tuple[dict, bool]:
    """The decoded talklike.json and whether the archive holds a guard; ArtifactError if it is not ours."""
    try:
        with open(path, "rb") as handle:
            head = handle.read(4)
    except FileNotFoundError:
        raise ArtifactError(f"{path}: no such model file") from None
    except IsADirectoryError:
        raise ArtifactError(f"{path}: is a directory, not a model file (export a run with `talklike export`)") from None
    except OSError as err:
        raise ArtifactError(f"{path}: cannot read model file ({err.strerror})") from None
    if head != b"PK\x03\x04":
        raise ArtifactError(f"{path}: not a talklike model file")
    try:
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
            meta_names = [n for n in names if n.endswith(f"/extra/{META_FILE}")]
            if not meta_names:
                if any(n.endswith("/data.pkl") for n in names) and not any("/code/" in n for n in names):
                    raise ArtifactError(
                        f"{path}: this is a training checkpoint, not a model file (run `talklike export` on the run)"
                    )
                raise ArtifactError(f"{path}: not a talklike model file (no talklike metadata inside)")
            raw = archive.read(meta_names[0])
            has_guard = any(n.endswith(f"/extra/{GUARD_FILE}") for n in names)
    except (zipfile.BadZipFile, EOFError, zipfile.LargeZipFile, OSError):
        raise ArtifactError(f"{path}: model file is truncated or damaged") from None
    except ValueError:
        raise ArtifactError(f"{path}: model file is truncated or damaged") from None
    try:
        meta = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise ArtifactError(f"{path}: model metadata is damaged (not valid JSON)") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT_NAME:
        raise ArtifactError(f"{path}: not a talklike model file")
    version = meta.get("format_version")
    if not isinstance(version, int) or isinstance(version, bool):
        raise ArtifactError(f"{path}: model metadata has no valid format_version")
    if version > FORMAT_VERSION:
        raise ArtifactError(
            f"{path}: made by a newer talklike (format {version}); this one reads format {FORMAT_VERSION} — upgrade talklike"
        )
    if version < 1:
        raise ArtifactError(f"{path}: unknown model format version {version}")
    return meta, has_guard


def read_metadata(path: str | os.PathLike) -> dict:
    """Only the metadata (format, vocab, authors, config, card): cheap, no TorchScript load."""
    return _read_meta(os.fspath(path))[0]


def load_artifact(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> Artifact:
    """Load and check a model file; a clear ArtifactError says what is wrong with a bad one."""
    path = os.fspath(path)
    meta, has_guard = _read_meta(path)
    extra = {META_FILE: ""}
    if has_guard:
        extra[GUARD_FILE] = ""
    with_experts = bool((meta.get("config") or {}).get("experts"))
    if with_experts:
        extra[EXPERTS_FILE] = ""
    try:
        module = torch.jit.load(path, map_location=map_location, _extra_files=extra)
    except (RuntimeError, ValueError, OSError) as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ArtifactError(f"{path}: model file is truncated or damaged ({first[:120]})") from None
    module.eval()
    try:
        vocab = Vocabulary.from_dict(meta["vocab"])
        authors = AuthorTable.from_dict(meta["authors"])
        config = ModelConfig.from_dict(meta["config"])
        guard = MemorizationGuard.from_bytes(extra[GUARD_FILE]) if has_guard else None
        experts = NgramExperts.from_bytes(extra[EXPERTS_FILE]) if with_experts else None
    except (KeyError, TypeError, ValueError) as err:
        raise ArtifactError(f"{path}: model metadata is damaged ({err})") from None
    if config.vocab_size != len(vocab) or config.n_authors != len(authors):
        raise ArtifactError(f"{path}: model metadata is inconsistent (vocabulary or author count)")
    return Artifact(
        module=module,
        vocab=vocab,
        authors=authors,
        config=config,
        card=meta.get("card") or {},
        guard=guard,
        experts=experts,
        path=path,
        size_bytes=os.path.getsize(path),
        quantized=meta.get("quantized"),
    )

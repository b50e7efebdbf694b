"""Shared fixtures: a real redis-server on loopback, a tiny random-weight artifact."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from pathlib import Path

import pytest

REDIS_SERVER = shutil.which("redis-server")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class RedisServer:
    """A throwaway redis-server in a temporary directory; no persistence unless `durable` (an append-only
    file, synced at every write: a restart keeps everything, as a hosted Redis would)."""

    def __init__(self, workdir: Path, durable: bool = False):
        self.workdir = workdir
        self.port = free_port()
        self.durable = durable
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [REDIS_SERVER, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--dir", str(self.workdir),
             *(["--appendonly", "yes", "--appendfsync", "always"] if self.durable else ["--appendonly", "no"])],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2) as s:
                    s.sendall(b"PING\r\n")
                    if s.recv(16).startswith(b"+PONG"):
                        return
            except OSError:
                time.sleep(0.02)
        self.stop()
        raise RuntimeError("redis-server did not start")

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(timeout=10)
            self.proc = None


def _redis(tmp_path_factory) -> RedisServer:
    if REDIS_SERVER is None:
        pytest.skip("redis-server is not installed (apt-get install redis-server); redis store not tested")
    pytest.importorskip("redis", reason="the redis client package is not installed; redis store not tested")
    return RedisServer(tmp_path_factory.mktemp("redis"))


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory):
    """One redis-server for the whole test session."""
    server = _redis(tmp_path_factory)
    server.start()
    yield server
    server.stop()


@pytest.fixture
def own_redis_server(tmp_path_factory):
    """A redis-server of this test alone, which the test may stop and restart."""
    server = _redis(tmp_path_factory)
    server.start()
    yield server
    server.stop()


# --- tiny artifacts ----------------------------------------------------------------------------------
# Alice and Bob take turns; Bob always says the same long line, so a trained model memorizes it.
ALICE_LINE = "hi there from alice"
BOB_LINE = "bob always says the same very long sentence about his green bicycle by the river"
PERSONAS = ["Alice", "Bob"]


def build_artifact(path: Path, train_steps: int = 0, quantize: str | None = None, guard: bool = True) -> Path:
    """Save a `tiny` model over Alice and Bob's vocabulary to `path`; trained for `train_steps` steps
    on their alternating messages (0: random weights, for plumbing tests)."""
    import torch

    from model.artifact import save_artifact
    from model.config import ModelConfig
    from model.guard import MemorizationGuard
    from model.network import CharLSTM
    from model.stream import encode_message
    from model.vocab import AuthorTable, Vocabulary

    vocab = Vocabulary.build([ALICE_LINE, BOB_LINE, "abcdefghijklmnopqrstuvwxyz ?!.,'"])
    authors = AuthorTable(PERSONAS)
    config = ModelConfig.from_preset("tiny", len(vocab), len(authors))
    with torch.random.fork_rng():  # a fixed model, without touching other tests' random state
        torch.manual_seed(0)
        model = CharLSTM(config)
    if train_steps:
        chars, who, speaker = [], [], []
        turns = [("Alice", ALICE_LINE), ("Bob", BOB_LINE)] * 3
        for i, (name, text) in enumerate(turns):
            c, a = encode_message(vocab, authors.id_of(name), text, session=i == 0)
            chars += c
            who += a
            nxt = authors.id_of(turns[(i + 1) % len(turns)][0])
            speaker += [-100] * (len(c) - 1) + [nxt]
        x = torch.tensor([chars[:-1]])
        a = torch.tensor([who[:-1]])
        y = torch.tensor([chars[1:]])
        s = torch.tensor([speaker[:-1]])
        opt = torch.optim.Adam(model.parameters(), lr=0.02)
        for _ in range(train_steps):
            h, c0 = model.init_state(1)
            logits, spk, _, _ = model(x, a, h, c0)
            loss = torch.nn.functional.cross_entropy(logits[0], y[0]) + torch.nn.functional.cross_entropy(
                spk[0], s[0], ignore_index=-100
            )
            opt.zero_grad()
            loss.backward()
            opt.step()
    model.eval()
    card = {"authors": {"Alice": {"messages": 3, "chars": 57}, "Bob": {"messages": 3, "chars": 246}}}
    save_artifact(path, model, vocab, authors, config, card,
                  MemorizationGuard.build([ALICE_LINE, BOB_LINE]) if guard else None, quantize=quantize)
    return path


@pytest.fixture(scope="session")
def tiny_artifact(tmp_path_factory) -> Path:
    """A `tiny` model with random weights (plumbing: shapes, stores, concurrency)."""
    return build_artifact(tmp_path_factory.mktemp("tiny") / "tiny.pt")


@pytest.fixture(scope="session")
def trained_artifact(tmp_path_factory) -> Path:
    """A `tiny` model trained until it repeats Alice's and Bob's lines (behaviour: personas, the guard)."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return build_artifact(tmp_path_factory.mktemp("trained") / "trained.pt", train_steps=150)
    finally:
        torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def one_torch_thread():
    """Tiny models on one thread: their ops are too small to split, and on a busy machine a second thread
    that gets descheduled stalls every step (tens of times slower). Use with
    `pytestmark = pytest.mark.usefixtures("one_torch_thread")`."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)

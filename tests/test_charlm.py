"""The char-level language model: gradients, torch parity, streaming, bits/char, training.

Oracles: centred finite differences of the whole model (embedding -> LSTM -> dropout ->
head -> softmax cross-entropy) in float64 with the dropout masks replayed; an equivalent
torch model (nn.Embedding + nn.LSTM + nn.Linear, weights copied) in float64; the
whole-sequence forward for the streaming step; a direct log-softmax for bits/char.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from conftest import fd_check, rel_err

from lstmkit.nn.losses import softmax_cross_entropy
from lstmkit.text.corpus import Vocab
from lstmkit.text.evaluate import bits_per_char
from lstmkit.text.model import CharLM, CharLMConfig
from lstmkit.text.sample import generate, next_char_distribution
from lstmkit.text.train import TrainConfig, load_model, train


def _model(dropout: float = 0.0, layers: int = 2, seed: int = 0, **kw) -> CharLM:
    cfg = dict(vocab_size=7, embed=4, hidden=5, layers=layers, dropout=dropout, dtype="float64")
    cfg.update(kw)
    return CharLM(CharLMConfig(**cfg), seed=seed)


def _randomize(model: CharLM, rng: np.random.Generator, scale: float = 0.5) -> None:
    """Non-default weights (biases included) so that no term of the gradient hides."""
    for w in model.parameters().values():
        w[...] = scale * rng.standard_normal(w.shape)


def _log_softmax(z: np.ndarray) -> np.ndarray:
    m = z.max(axis=-1, keepdims=True)
    return z - m - np.log(np.exp(z - m).sum(axis=-1, keepdims=True))


# ---- configuration ----------------------------------------------------------------------


def test_dtype_option_reaches_every_part():
    model = _model()
    assert all(w.dtype == np.float64 for w in model.parameters().values())
    assert all(s.dtype == np.float64 for s in model.initial_state(3))
    assert json.loads(json.dumps(model.config.to_dict()))["dtype"] == "float64"
    default = CharLM(CharLMConfig(vocab_size=5, embed=3, hidden=4, layers=1), seed=0)
    assert all(w.dtype == np.float32 for w in default.parameters().values())
    # the names the checkpoint stores: the children's torch-style names, dotted
    assert list(default.parameters()) == [
        "embed.weight",
        "lstm.weight_ih_l0",
        "lstm.weight_hh_l0",
        "lstm.bias_ih_l0",
        "lstm.bias_hh_l0",
        "head.weight",
        "head.bias",
    ]


# ---- gradients: finite differences ----------------------------------------------------


def test_whole_model_gradient_matches_finite_differences_with_dropout():
    rng = np.random.default_rng(1)
    model = _model(dropout=0.3, layers=2, seed=1)
    _randomize(model, rng)
    T, N, V = 5, 3, model.config.vocab_size
    ids = rng.integers(0, V, size=(T, N))
    ids.flat[:V] = np.arange(V)  # every id appears, so every embedding row has a gradient
    targets = rng.integers(0, V, size=(T, N))
    h0 = rng.standard_normal((2, N, 5))
    c0 = rng.standard_normal((2, N, 5))
    masks = model.rng_state()  # replayed, so every forward draws the same dropout masks

    def loss() -> float:
        model.set_rng_state(masks)
        logits, _ = model(ids, (h0, c0))
        return softmax_cross_entropy(logits, targets)[0]

    model.set_rng_state(masks)
    logits, _ = model(ids, (h0, c0))
    _, dlogits = softmax_cross_entropy(logits, targets)
    model.zero_grad()
    model.backward(dlogits)
    # dropout really dropped something (else this test would not cover it)
    assert (model.drop._cache == 0).any()
    model.set_rng_state(masks)
    model.eval()
    eval_logits, _ = model(ids, (h0, c0))
    model.train()
    assert rel_err(eval_logits, logits) > 1e-3

    errors = {}
    for name, w in model.parameters().items():
        errors[name] = fd_check(loss, w, model.grads[name], rng, max_entries=40)
    print("max FD rel error per parameter:", {k: f"{e:.1e}" for k, e in errors.items()})
    assert max(errors.values()) < 1e-5, errors  # roundoff of the FD quotient is ~1e-7
    assert np.abs(model.grads["embed.weight"]).min(axis=1).max() > 0  # rows were reached


# ---- torch parity -----------------------------------------------------------------------


def _torch_twin(model: CharLM):
    import torch

    torch.set_num_threads(1)
    cfg = model.config

    class Twin(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            kw = {"dtype": torch.float64}
            self.embed = torch.nn.Embedding(cfg.vocab_size, cfg.embed, **kw)
            self.lstm = torch.nn.LSTM(cfg.embed, cfg.hidden, cfg.layers, **kw)
            self.drop = torch.nn.Dropout(cfg.dropout)
            self.head = torch.nn.Linear(cfg.hidden, cfg.vocab_size, **kw)

        def forward(self, ids, state):
            y, state = self.lstm(self.embed(ids), state)
            return self.head(self.drop(y)), state

    twin = Twin()
    # strict: the same names and shapes, or this fails
    twin.load_state_dict({k: torch.from_numpy(v.copy()) for k, v in model.state_dict().items()})
    return twin


@pytest.mark.parametrize("mode", ["train", "eval"])
def test_matches_torch_logits_state_and_gradients(mode):
    import torch

    rng = np.random.default_rng(2)
    # eval: dropout is configured but must be off, as in torch
    model = _model(dropout=0.0 if mode == "train" else 0.4, layers=2, seed=2, hidden=6)
    _randomize(model, rng)
    twin = _torch_twin(model)
    if mode == "eval":
        model.eval()
        twin.eval()
    T, N, V = 6, 4, model.config.vocab_size
    ids = rng.integers(0, V, size=(T, N))
    targets = rng.integers(0, V, size=(T, N))
    h0, c0 = rng.standard_normal((2, 2, N, 6))

    logits, (h_n, c_n) = model(ids, (h0, c0))
    loss, dlogits = softmax_cross_entropy(logits, targets)
    model.zero_grad()
    model.backward(dlogits)

    t_logits, (t_h, t_c) = twin(torch.from_numpy(ids), (torch.tensor(h0), torch.tensor(c0)))
    t_loss = torch.nn.functional.cross_entropy(
        t_logits.reshape(-1, V), torch.from_numpy(targets).reshape(-1)
    )
    t_loss.backward()

    assert rel_err(logits, t_logits.detach().numpy()) < 1e-12
    assert rel_err(h_n, t_h.detach().numpy()) < 1e-12
    assert rel_err(c_n, t_c.detach().numpy()) < 1e-12
    assert abs(loss - t_loss.item()) < 1e-12
    t_grads = {k: p.grad.numpy() for k, p in twin.named_parameters()}
    assert list(t_grads) == list(model.grads)
    errors = {k: rel_err(model.grads[k], t_grads[k]) for k in t_grads}
    assert max(errors.values()) < 1e-10, errors


# ---- streaming and sampling -------------------------------------------------------------


def test_step_equals_forward():
    rng = np.random.default_rng(3)
    model = _model(dropout=0.5, layers=2, seed=3)
    _randomize(model, rng)
    model.eval()
    ids = rng.integers(0, 7, size=(9, 2))
    h0, c0 = rng.standard_normal((2, 2, 2, 5))
    logits, (h_n, c_n) = model(ids, (h0, c0))
    state = (h0, c0)
    for t in range(ids.shape[0]):
        step_logits, state = model.step(ids[t], state)
        assert rel_err(step_logits, logits[t]) < 1e-12, t
    assert rel_err(state[0], h_n) < 1e-12 and rel_err(state[1], c_n) < 1e-12


def test_next_char_distribution():
    logits = np.array([5.0, 1.0, 3.0, 2.0, 3.0, -1.0])
    p = next_char_distribution(logits, temperature=0.5)
    z = np.exp(logits[1:] / 0.5)
    assert p[0] == 0.0  # <unk> is never drawn
    assert np.allclose(p[1:], z / z.sum(), rtol=1e-13, atol=0)
    p = next_char_distribution(logits, temperature=1.0, top_k=3)
    # top 3 of the logits: ids 0, 2, 4; id 0 is <unk>, so 2 and 4 share it equally
    assert np.allclose(p, [0, 0, 0.5, 0, 0.5, 0])
    # only <unk> left: it is kept rather than dividing by zero
    assert next_char_distribution(logits, top_k=1).tolist() == [1, 0, 0, 0, 0, 0]


def test_generate_equals_rerunning_the_prefix():
    """generate() carries the state with step(); the slow oracle re-runs the whole text."""
    rng = np.random.default_rng(4)
    vocab = Vocab.build("abcdef")
    model = _model(dropout=0.2, layers=2, seed=4)
    _randomize(model, rng, scale=1.0)
    prime, length, temperature, top_k = "cab?", 25, 0.9, 4  # "?" is unknown: id 0
    got = "".join(generate(model, vocab, prime, length, temperature, top_k, seed=11))
    assert len(got) == length and "\ufffd" not in got

    draw = np.random.default_rng(11)
    text = prime
    for _ in range(length):
        logits, _ = model(vocab.encode(text)[:, None])  # (T, 1, V)
        p = next_char_distribution(logits[-1, 0], temperature, top_k)
        text += vocab.decode([int(draw.choice(p.size, p=p))])
    assert got == text[len(prime) :]
    # a seed makes it deterministic; another seed gives another text
    again = "".join(generate(model, vocab, prime, length, temperature, top_k, seed=11))
    other = "".join(generate(model, vocab, prime, length, temperature, top_k, seed=12))
    assert again == got != other


def test_generate_rejects_bad_options():
    model, vocab = _model(), Vocab.build("abcdef")
    with pytest.raises(ValueError, match="temperature"):
        next(generate(model, vocab, "a", 3, temperature=0.0))
    with pytest.raises(ValueError, match="top_k"):
        next(generate(model, vocab, "a", 3, top_k=0))


# ---- bits per character -----------------------------------------------------------------


@pytest.mark.parametrize("batch,seq_len", [(1, 7), (3, 5), (4, 64)])
def test_bits_per_char_equals_a_direct_computation(batch, seq_len):
    rng = np.random.default_rng(5)
    model = _model(dropout=0.5, layers=2, seed=5)
    _randomize(model, rng)
    ids = rng.integers(0, 7, size=50)
    got = bits_per_char(model, ids, batch=batch, seq_len=seq_len)
    assert model.training  # restored afterwards
    # direct: stream b is ids[b*L:(b+1)*L] read in one forward, predicting the next id
    model.eval()
    L = (len(ids) - 1) // batch
    logp = []
    for b in range(batch):
        logits, _ = model(ids[b * L : (b + 1) * L, None])  # (L, 1, V)
        targets = ids[b * L + 1 : (b + 1) * L + 1]
        logp.append(_log_softmax(logits[:, 0])[np.arange(L), targets])
    model.train()
    expected = -np.concatenate(logp).mean() / math.log(2)
    assert abs(got - expected) < 1e-12 * expected


def test_bits_per_char_of_a_uniform_model_is_log2_v():
    model = _model(layers=1)
    model.head.parameters()["weight"][...] = 0.0
    model.head.parameters()["bias"][...] = 0.0
    ids = np.random.default_rng(6).integers(0, 7, size=40)
    assert abs(bits_per_char(model, ids, batch=2, seq_len=8) - math.log2(7)) < 1e-12
    with pytest.raises(ValueError, match="too short"):
        bits_per_char(model, ids[:1])


# ---- end to end -------------------------------------------------------------------------


def _repetitive_corpus(folder: Path) -> Path:
    folder.mkdir()
    words = ["alpha", "beta", "gamma", "delta"]
    for k in range(6):
        lines = [f"{words[(k + j) % 4]} = {words[j % 4]}({j % 3})\n" for j in range(60)]
        (folder / f"f{k}.txt").write_text("".join(lines), encoding="utf-8")
    return folder


@pytest.mark.slow
def test_tiny_training_run_lowers_validation_bits_per_char(tmp_path):
    text = _repetitive_corpus(tmp_path / "corpus")
    config = TrainConfig(
        embed=16, hidden=32, layers=1, seq_len=16, batch=8, steps=150, lr=5e-3, eval_every=10,
        eval_chars=2000, seed=0,
    )  # fmt: skip
    summary = train(config, tmp_path / "run", [str(text)], show_progress=False, log=print)
    records = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").open()]
    val = [(r["step"], r["val_bpc"]) for r in records if "val_bpc" in r]
    assert [s for s, _ in val] == list(range(10, 151, 10))
    first, last = val[0][1], val[-1][1]
    vocab_size = summary["vocab_size"]
    print(f"val bits/char: {first:.3f} at step 10 -> {last:.3f} at step 150 "
          f"(uniform: {math.log2(vocab_size):.3f})")  # fmt: skip
    assert last < first - 2.0
    assert last < 0.5 * math.log2(vocab_size)
    assert summary["steps"] == 150 and summary["val_bpc"] == last
    assert summary["best_val_bpc"] == min(b for _, b in val)
    train_losses = [r["train_loss"] for r in records if "train_loss" in r]
    assert train_losses[-1] < train_losses[0] - 1.0
    for name in ("latest.npz", "best.npz", "loss.png"):
        assert (tmp_path / "run" / name).is_file(), name

    # the best checkpoint is what the run folder loads, and it scores what training logged
    model, vocab, meta, _ = load_model(tmp_path / "run")
    assert meta["best_val_bpc"] == summary["best_val_bpc"]
    from lstmkit.text.corpus import load_corpus

    val_ids = vocab.encode(load_corpus([str(text)]).val[:2000])
    assert bits_per_char(model, val_ids, seq_len=16) == pytest.approx(meta["best_val_bpc"])

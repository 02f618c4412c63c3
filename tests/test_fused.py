"""The fused LSTM path (lstmkit.kernels) against the reference path (lstmkit.nn.time_loop).

Both run the same layer on the same data; forward outputs, final states, dx, dstate and
every parameter gradient must agree to float32 rounding (the compiled tanh is accurate to
a few ulp). Each path of the kernel is forced by an Execution (lstmkit.kernels.execution)
with its crossovers set to 0 (always) or a huge value (never). The reference is
itself checked against torch and finite differences elsewhere; here one float32 case is
also checked against torch in float64, so the compiled kernels meet an independent oracle.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np
import pytest
from conftest import (
    config_id,
    lk_run,
    make_layer,
    parts,
    random_case,
    random_config,
    rel_err,
    torch_run,
    torch_twin,
)

import lstmkit as lk
from lstmkit import kernels
from lstmkit.kernels import cell_split, h_loop, parallel
from lstmkit.kernels import lstm as fast_lstm

TOL = {np.float64: 1e-12, np.float32: 2e-5}


def _configs() -> list[dict[str, Any]]:
    rng = np.random.default_rng(5)
    cfgs = [random_config("LSTM", rng) for _ in range(24)]
    # make sure the grid has each option, with larger sizes than random_config's
    base = {
        "kind": "LSTM",
        "input_size": 5,
        "hidden_size": 7,
        "num_layers": 1,
        "bias": True,
        "batch_first": False,
        "bidirectional": False,
        "proj_size": 0,
        "T": 6,
        "N": 4,
        "unbatched": False,
        "lengths": False,
        "given_state": True,
        "given_dstate": True,
    }
    for change in [
        {},
        {"lengths": True},
        {"proj_size": 3},
        {"proj_size": 3, "lengths": True, "bidirectional": True},
        {"num_layers": 2, "bidirectional": True},
        {"num_layers": 3, "batch_first": True, "lengths": True},
        {"bias": False, "given_state": False, "given_dstate": False},
        {"unbatched": True, "N": 1},
    ]:
        cfgs.append({**base, **change})
    return cfgs


CONFIGS = _configs()


def _compare(got: dict[str, Any], ref: dict[str, Any], tol: float) -> None:
    assert rel_err(got["y"], ref["y"]) < tol
    assert rel_err(got["dx"], ref["dx"]) < tol
    for a, b in zip(got["state_n"], ref["state_n"], strict=True):
        assert rel_err(a, b) < tol
    for a, b in zip(got["dstate0"], ref["dstate0"], strict=True):
        assert rel_err(a, b) < tol
    assert got["grads"].keys() == ref["grads"].keys()
    for name in ref["grads"]:
        assert rel_err(got["grads"][name], ref["grads"][name]) < tol, name


def _fused_and_reference(
    cfg: dict[str, Any], dtype: Any, mode: str = "", **extra: Any
) -> tuple[Any, Any]:
    fused = make_layer(cfg, dtype, seed=1, **extra)
    reference = make_layer(cfg, dtype, seed=1, **extra)
    fused.execution = _execution(mode, impl="fused")
    reference.impl = "reference"
    return fused, reference


def _execution(mode: str, impl: str = "auto") -> lk.Execution:
    """On any size, select: ``per-step`` the per-step loop instead of the compiled
    whole-sequence one; ``cells`` the loops of lstmkit.kernels.cell_split (``projected``: with
    the input projection as one GEMM before the loop; ``own``: in inference, each thread's
    own projection before its loop; ``transposed``: the recurrent products transposed);
    ``split`` two threads (splitting the batch, or with ``cells`` the cells; the loop back
    and the loop back too, or with ``rows`` the batch: Execution.rows_forward_up_to (in
    training), rows_backward_up_to)."""
    ex = lk.Execution(impl=impl, split_from=0 if "cells" in mode else 2**62)
    if "per-step" in mode:
        ex = replace(ex, small=0, small_backward=0, small_h=0)
    if "projected" in mode:
        ex = replace(ex, project_in_loop=0)
    if "transposed" in mode:
        ex = replace(ex, transposed_from=0)
    if "own" in mode:
        ex = replace(ex, project_in_loop_inference=0)
    if "split" in mode:
        ex = replace(ex, min_work=0, min_rows=1, min_cells=1, threads=2)
        up_to = 2**62 if "rows" in mode else 0
        ex = replace(ex, rows_backward_up_to=up_to, rows_forward_up_to=up_to)
    return ex


@pytest.mark.parametrize(
    "dtype",
    [
        "float32",
        "float32-per-step",
        "float32-split",
        "float32-per-step-split",
        "float32-cells",
        "float32-cells-split",
        "float32-cells-split-rows",
        "float32-cells-split-projected",
        "float32-cells-transposed",
        "float32-cells-split-transposed",
    ],
)
@pytest.mark.parametrize("cfg", CONFIGS, ids=config_id)
def test_fused_equals_reference(cfg: dict[str, Any], dtype: str) -> None:
    """float32 runs the compiled whole-sequence loops, per-step the per-step kernels,
    cells the loops split by cells; split: over two threads (see ``_execution``). Each
    path is compared with the reference and with torch.nn (in float64)."""
    fused, reference = _fused_and_reference(cfg, np.float32, dtype)
    case = random_case(fused, cfg, np.random.default_rng(3), np.float32)
    got = lk_run(fused, case)
    assert all(isinstance(t, fast_lstm.FusedTape) for t in fused._tape["tapes"])
    _compare(got, lk_run(reference, case), TOL[np.float32])
    _compare(got, _torch64(fused, cfg, case), 1e-4)  # and with torch.nn, in float64


def _h_configs() -> list[dict[str, Any]]:
    rng = np.random.default_rng(11)
    return [random_config(kind, rng) for kind in ("GRU", "RNN") for _ in range(12)]


@pytest.mark.parametrize("mode", ["", "per-step", "split", "per-step-split"])
@pytest.mark.parametrize("cfg", _h_configs(), ids=config_id)
def test_fused_gru_and_rnn_equal_reference_and_torch(cfg: dict[str, Any], mode: str) -> None:
    """The GRU and RNN kernel (lstmkit.kernels.h_loop): the compiled products, BLAS per
    step (per-step), over two threads (split); against the reference and torch.nn."""
    fused, reference = _fused_and_reference(cfg, np.float32, mode)
    case = random_case(fused, cfg, np.random.default_rng(12), np.float32)
    got = lk_run(fused, case)
    assert all(isinstance(t, h_loop.HTape) for t in fused._tape["tapes"])
    _compare(got, lk_run(reference, case), TOL[np.float32])
    _compare(got, _torch64(fused, cfg, case), 1e-4)


@pytest.mark.parametrize(
    "kind, kwargs",
    [("GRU", {}), ("GRU", {"bias": False}), ("RNN", {}), ("RNN", {"nonlinearity": "relu"})],
)
@pytest.mark.parametrize("unbatched", [False, True])
def test_gru_and_rnn_streaming_step_equals_reference(
    kind: str, kwargs: dict[str, Any], unbatched: bool
) -> None:
    fused, reference = (getattr(lk, kind)(5, 7, num_layers=2, seed=0, **kwargs) for _ in range(2))
    reference.impl = "reference"
    rng = np.random.default_rng(0)
    h_f = h_r = None
    for _ in range(4):
        x = rng.standard_normal(5 if unbatched else (3, 5)).astype(np.float32)
        y_f, h_f = fused.step(x, h_f)
        y_r, h_r = reference.step(x, h_r)
        assert y_f.shape == y_r.shape and h_f.shape == h_r.shape
        assert rel_err(y_f, y_r) < TOL[np.float32] and rel_err(h_f, h_r) < TOL[np.float32]
    bad = x.copy()
    bad[..., 0] = np.nan  # not finite: the reference step raises the error
    with pytest.raises(ValueError, match="expected finite values"):
        fused.step(bad, h_f)


@pytest.mark.parametrize("kind", ["GRU", "RNN"])
def test_fused_gru_and_rnn_activations_and_state_grads(kind: str) -> None:
    cfg = {k: v for k, v in CONFIGS[-5].items() if k != "proj_size"}
    cfg.update(kind=kind, lengths=True)
    fused, reference = _fused_and_reference(cfg, np.float32)
    case = random_case(fused, cfg, np.random.default_rng(13), np.float32)
    for layer in (fused, reference):
        layer.record_state_grads = True
        lk_run(layer, case)
    act_f, act_r = fused.activations(), reference.activations()
    for key in act_r:
        assert act_f[key].keys() == act_r[key].keys()
        for name in act_r[key]:
            assert rel_err(act_f[key][name], act_r[key][name]) < TOL[np.float32], (key, name)
    for name in reference.state_grads:
        assert rel_err(fused.state_grads[name], reference.state_grads[name]) < TOL[np.float32]


@pytest.mark.parametrize(
    "mode",
    [
        "float64",
        "float32",
        "float32-cells",
        "float32-cells-split",
        "float32-cells-split-projected",
        "float32-cells-split-own",
        "float32-cells-split-transposed",
    ],
)
@pytest.mark.parametrize("cfg", CONFIGS[::3] + CONFIGS[-8:], ids=config_id)
def test_inference_gives_the_same_results_and_records_nothing(
    cfg: dict[str, Any], mode: str
) -> None:
    """forward(..., inference=True) (two-step rings in the split loops) equals the
    recording forward, on the same kernels, to one float32 rounding; then backward and
    activations refuse instead of using a stale tape. (float64: the reference.)

    Not bit for bit on every machine: bit for bit where an earlier CI ran, but on an AMD Zen 4
    with AVX-512 the cell-split loops' y was one ulp off in 1 of 42 values (7.5e-9; the same
    with OpenBLAS's Haswell kernels and numba compiling for haswell). The two calls keep a
    step's values in different arrays (the tape, or a ring), and the compiled loops may
    take other vectorised paths for them. A mistake in the rings is far larger."""
    dtype = getattr(np, mode.split("-")[0])
    layer = make_layer(cfg, dtype, seed=1)
    layer.execution = _execution(mode)
    case = random_case(layer, cfg, np.random.default_rng(3), dtype)
    args = (case["x"], case["state"], case["lengths"])
    y, state = layer(*args)
    y_inf, state_inf = layer(*args, inference=True)
    assert rel_err(y_inf, y) < 1e-6
    for a, b in zip(parts(state_inf), parts(state), strict=True):
        assert rel_err(a, b) < 1e-6
    with pytest.raises(RuntimeError, match="inference=True"):
        layer.backward(case["dy"], case["dstate"])
    with pytest.raises(RuntimeError, match="inference=True"):
        layer.activations()
    layer(*args)  # recording again: backward works
    layer.backward(case["dy"], case["dstate"])


@pytest.mark.parametrize("kind", ["GRU", "RNN"])
def test_inference_on_the_reference_layers(kind: str) -> None:
    """GRU and RNN (always the reference loop) take inference=True alike: same results,
    nothing recorded."""
    layer = getattr(lk, kind)(4, 6, num_layers=2, bidirectional=True, seed=0)
    x = np.random.default_rng(0).standard_normal((5, 3, 4)).astype(np.float32)
    y, h = layer(x)
    y_inf, h_inf = layer(x, inference=True)
    np.testing.assert_array_equal(y_inf, y)
    np.testing.assert_array_equal(h_inf, h)
    with pytest.raises(RuntimeError, match="inference=True"):
        layer.backward(np.ones_like(y))


def test_inference_keeps_two_steps_of_the_split_loops_arrays() -> None:
    """Inference on the split loops allocates no (T, N, 4H) tape: tracemalloc's peak of a
    (200, 8, 16, 64) forward is below the recording one's by about the tape's size."""
    import tracemalloc

    T, N, H = 200, 8, 64
    x = np.random.default_rng(0).standard_normal((T, N, 16)).astype(np.float32)
    peaks = {}
    warm = lk.LSTM(16, H, seed=0)
    warm.execution = _execution("cells-split")
    for inference in (False, True, True):  # compiled code for every path x takes, the
        warm(x, inference=inference)  # kept weights' compare of a second call included (a
        # fresh numba cache compiles inside the measurement otherwise: 3 MB more)
    for inference in (False, True):
        layer = lk.LSTM(16, H, seed=0)
        layer.execution = _execution("cells-split")
        layer(x[:2], inference=inference)  # pools outside the measurement (sized for T = 2)
        tracemalloc.start()
        layer(x, inference=inference)
        peaks[inference] = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    tape = T * N * (4 * H + H + H) * 4  # gates, c_prev, tanh_c
    assert peaks[False] - peaks[True] > 0.9 * tape
    assert peaks[True] < 0.5 * peaks[False]


@pytest.mark.parametrize("mode", ["", "cells-split"])
@pytest.mark.parametrize("lengths", [None, [6, 2, 4]])
def test_without_forget_gate(mode: str, lengths: Any) -> None:
    cfg = {**CONFIGS[-8], "lengths": lengths is not None, "N": 3}
    fused, reference = _fused_and_reference(cfg, np.float32, mode, forget_gate=False)
    case = random_case(fused, cfg, np.random.default_rng(4), np.float32)
    case["lengths"] = lengths
    got = lk_run(fused, case)
    _compare(got, lk_run(reference, case), TOL[np.float32])
    assert np.all(got["grads"]["weight_ih_l0"][7:14] == 0)  # the forget rows learn nothing


@pytest.mark.parametrize("mode", ["", "cells-split", "per-step"])
@pytest.mark.parametrize(
    "gates",
    [
        {"input_gate": False},
        {"output_gate": False},
        {"input_gate": False, "output_gate": False},
        {"coupled_gates": True},
        {"input_activation": False},
        {"output_activation": False},
        {"coupled_gates": True, "input_activation": False, "output_activation": False},
        {"coupled_gates": True, "output_gate": False, "forget_gate": True},
        {"peepholes": True},
        {"peepholes": True, "coupled_gates": True},
        {"peepholes": True, "output_activation": False, "input_gate": False},
    ],
    ids=str,
)
def test_gate_options_on_the_kernel(gates: dict[str, bool], mode: str) -> None:
    """Greff et al.'s NIG, NOG (gate constants alpha 0, beta 1), CIFG, NIAF, NOAF and
    peepholes (the cell's option bits) on the fused kernel, every layout and the streaming
    step: equal to the reference (every gradient, the peephole weights' too), and a gate
    switched off or coupled learns nothing in its rows."""
    cfg = {**CONFIGS[-8], "lengths": True, "N": 3}
    fused, reference = _fused_and_reference(cfg, np.float32, mode, **gates)
    case = random_case(fused, cfg, np.random.default_rng(4), np.float32)
    case["lengths"] = [6, 2, 4]
    got = lk_run(fused, case)
    assert all(isinstance(t, fast_lstm.FusedTape) for t in fused._tape["tapes"])
    _compare(got, lk_run(reference, case), TOL[np.float32])
    H = cfg["hidden_size"]
    rows = {"input_gate": slice(0, H), "coupled_gates": slice(H, 2 * H)}
    rows["output_gate"] = slice(3 * H, 4 * H)
    for name, value in gates.items():
        if name in rows and value == (name == "coupled_gates"):
            assert np.all(got["grads"]["weight_ih_l0"][rows[name]] == 0), name
    y_steps = [fused.step(case["x"][t])[0] for t in range(2)]  # the streaming kernel too
    y_ref = [reference.step(case["x"][t])[0] for t in range(2)]
    for a, b in zip(y_steps, y_ref, strict=True):
        assert rel_err(a, b) < TOL[np.float32]


def test_where_the_kernel_does_not_apply_auto_runs_the_reference(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """float64, or float32 without numba: "auto" runs the reference, "fused" says why not."""
    x64 = np.ones((3, 2, 4))
    layer = lk.LSTM(4, 5, seed=0, dtype=np.float64)
    layer(x64)
    assert not isinstance(layer._tape["tapes"][0], fast_lstm.FusedTape)
    with pytest.raises(ValueError, match="needs float32 and numba"):
        layer(x64, execution=lk.Execution(impl="fused"))
    monkeypatch.setattr(kernels, "available", lambda dtype: False)
    layer = lk.LSTM(4, 5, seed=0)
    layer(x64.astype(np.float32))
    assert not isinstance(layer._tape["tapes"][0], fast_lstm.FusedTape)


def _torch64(layer: Any, cfg: dict[str, Any], case: dict[str, Any]) -> dict[str, Any]:
    """torch.nn's results in float64 for a float32 layer and case (an outside oracle)."""
    twin = make_layer(cfg, np.float64)
    twin.load_state_dict({k: v.astype(np.float64) for k, v in layer.state_dict().items()})

    def wide(v: Any) -> Any:
        if isinstance(v, np.ndarray) and v.dtype == np.float32:
            return v.astype(np.float64)
        if isinstance(v, tuple | list) and v and isinstance(v[0], np.ndarray):
            return type(v)(wide(a) for a in v)
        return v

    return torch_run(torch_twin(twin), {k: wide(v) for k, v in case.items()})


def test_float32_fused_against_torch_float64() -> None:
    """Longer sequences, larger gates: the compiled float32 kernels meet an outside oracle."""
    cfg = {**CONFIGS[-8], "input_size": 9, "hidden_size": 33, "T": 40, "N": 5, "lengths": True}
    layer = make_layer(cfg, np.float32, seed=2)
    layer.impl = "fused"
    case = random_case(layer, cfg, np.random.default_rng(7), np.float32)
    _compare(lk_run(layer, case), _torch64(layer, cfg, case), 1e-4)


@pytest.mark.parametrize("mode", ["", "split", "cells-split"])
def test_activations_and_state_grads_match(mode: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """split: the two directions run concurrently, one thread each (checked); cells: a
    layer without projection, on the loops split by cells."""
    split = "split" in mode
    cfg = {**CONFIGS[-5], "lengths": True}  # proj, bidirectional, lengths
    if "cells" in mode:
        cfg["proj_size"] = 0
    dtype = np.float32
    fused, reference = _fused_and_reference(cfg, dtype, mode)
    case = random_case(fused, cfg, np.random.default_rng(8), dtype)
    for layer in (fused, reference):
        layer.record_state_grads = True
    threads: list[Any] = []
    for name in ("forward", "backward"):
        run = getattr(fast_lstm, name)

        def spy(*args: Any, _run: Any = run, **kwargs: Any) -> Any:
            threads.append(kwargs["ex"].threads)
            return _run(*args, **kwargs)

        monkeypatch.setattr(fast_lstm, name, spy)
    lk_run(fused, case)
    assert threads == ([1] * 4 if split else [None] * 4)  # forward, backward x 2 directions
    lk_run(reference, case)
    act_f, act_r = fused.activations(), reference.activations()
    assert act_f.keys() == act_r.keys()
    for key in act_r:
        assert act_f[key].keys() == act_r[key].keys()
        for name in act_r[key]:
            assert rel_err(act_f[key][name], act_r[key][name]) < TOL[dtype], (key, name)
    assert fused.state_grads.keys() == reference.state_grads.keys()
    for name in reference.state_grads:
        assert rel_err(fused.state_grads[name], reference.state_grads[name]) < TOL[dtype], name


def test_backward_twice_accumulates() -> None:
    cfg = CONFIGS[-8]
    fused, reference = _fused_and_reference(cfg, np.float32)
    case = random_case(fused, cfg, np.random.default_rng(9), np.float32)
    for layer in (fused, reference):
        layer(case["x"], case["state"])
        layer.backward(case["dy"], case["dstate"])
        layer.backward(case["dy"], case["dstate"])
    for name in reference.grads:
        assert rel_err(fused.grads[name], reference.grads[name]) < TOL[np.float32]


@pytest.mark.parametrize("mode", ["float32-cells-split", "float32"])
def test_reused_workspace_keeps_results_exact(mode: str) -> None:
    """The tape reuses its arrays from call to call: a run after runs of other lengths (the
    arrays reallocated) and of the same length (reused) gives the reference's results, and
    an earlier forward's outputs and activations are not overwritten by later ones."""
    dtype = np.float32
    cfg = {**CONFIGS[-4], "lengths": True}  # 2 layers, bidirectional
    fused, reference = _fused_and_reference(cfg, dtype, mode)
    cases = [
        random_case(fused, {**cfg, "T": T}, np.random.default_rng(seed), dtype)
        for T, seed in [(9, 0), (4, 1), (9, 2)]
    ]
    first = lk_run(fused, cases[0])
    acts = fused.activations()
    y_first = first["y"].copy()
    for case in [cases[2], cases[1], cases[2], cases[1]]:  # same length: reused arrays
        got = lk_run(fused, case)
    _compare(got, lk_run(reference, cases[1]), TOL[dtype])
    assert np.array_equal(first["y"], y_first)
    lk_run(fused, cases[0])
    again = fused.activations()
    for key in acts:
        for name in acts[key]:
            assert np.array_equal(acts[key][name], again[key][name]), (key, name)


def test_concurrent_inference_on_one_layer_is_exact() -> None:
    """Threads running forward on the same layer at once: each gets its own result (the
    reused tape arrays go to one call at a time; the others allocate their own).

    Equal to float32 rounding, not bit for bit: the limit on BLAS's threads is one for the
    whole process (threadpoolctl), so a product may run on one BLAS thread in one call and
    on two in another, and some OpenBLAS kernels (``Haswell``) then round differently (one
    ulp seen). A call that read another's arrays would be off by the outputs' own size."""
    from concurrent.futures import ThreadPoolExecutor

    layer = lk.LSTM(16, 64, num_layers=2, seed=3)
    layer.eval()
    rng = np.random.default_rng(4)
    xs = [rng.standard_normal((40, 8, 16)).astype(np.float32) for _ in range(4)]
    expected = [layer(x)[0] for x in xs]
    assert min(rel_err(expected[0], e) for e in expected[1:]) > 0.1  # inputs tell apart

    def worst(k: int) -> float:
        return max(rel_err(layer(xs[k])[0], expected[k]) for _ in range(5))

    with ThreadPoolExecutor(4) as pool:
        assert max(pool.map(worst, range(4))) < 1e-5


def test_a_failing_part_does_not_hang_the_others(monkeypatch: pytest.MonkeyPatch) -> None:
    """When one thread of the split loops raises, the other stops waiting for it and the
    error reaches the caller (run in a thread with a timeout, so a hang fails the test)."""
    import threading

    real = cell_split.forward

    def broken(part: Any, *args: Any) -> None:
        if part.me == 1:
            raise MemoryError("part 1 failed")
        real(part, *args)

    monkeypatch.setattr(cell_split, "forward", broken)
    layer = lk.LSTM(8, 32, seed=0)
    layer.execution = _execution("cells-split")
    x = np.random.default_rng(0).standard_normal((50, 4, 8)).astype(np.float32)
    errors: list[BaseException] = []

    def call() -> None:
        try:
            layer(x)
        except BaseException as e:
            errors.append(e)

    worker = threading.Thread(target=call, daemon=True)
    worker.start()
    worker.join(timeout=60)
    assert not worker.is_alive(), "the other part kept waiting"
    assert len(errors) == 1 and "part 1 failed" in str(errors[0])


def test_impl_selection() -> None:
    x = np.ones((3, 2, 4), np.float32)
    gru = lk.GRU(4, 5, seed=0)
    gru(x)
    assert isinstance(gru._tape["tapes"][0], h_loop.HTape)
    gru.impl = "reference"
    gru(x)
    assert not isinstance(gru._tape["tapes"][0], h_loop.HTape)
    with pytest.raises(ValueError, match="needs float32 and numba"):
        lk.GRU(4, 5, dtype=np.float64)(x.astype(np.float64), execution=lk.Execution(impl="fused"))
    lstm = lk.LSTM(4, 5, seed=0)
    with pytest.raises(ValueError, match="impl: expected one of"):
        lstm.impl = "fast"
    lstm(x)
    assert isinstance(lstm._tape["tapes"][0], fast_lstm.FusedTape)
    lstm(x, execution=lk.Execution(impl="reference"))  # this call only
    assert not isinstance(lstm._tape["tapes"][0], fast_lstm.FusedTape)
    assert lstm.impl == "auto"
    lstm.backward(np.ones((3, 2, 5), np.float32))  # by the implementation that recorded
    lstm.impl = "reference"
    lstm(x)
    assert not isinstance(lstm._tape["tapes"][0], fast_lstm.FusedTape)


@pytest.mark.parametrize(
    "bad",
    [{"impl": "fast"}, {"threads": 0}, {"threads": 1.5}, {"small": -1}, {"min_rows": True}],
    ids=str,
)
def test_execution_refuses_bad_choices(bad: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match=next(iter(bad))):
        lk.Execution(**bad)


def test_compiled_tanh_accuracy() -> None:
    cell = pytest.importorskip("lstmkit.kernels.lstm_cell")
    z = np.linspace(-10, 10, 4001).astype(np.float32)
    t = np.array([cell.tanh(v) for v in z], np.float32)
    assert np.max(np.abs(t - np.tanh(z.astype(np.float64)))) < 4e-7


@pytest.mark.slow
def test_benchmark_smoke() -> None:
    """The benchmark's training row runs on a tiny shape (timings are not checked)."""
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_lstm.py"
    spec = importlib.util.spec_from_file_location("bench_lstm", path)
    assert spec is not None and spec.loader is not None
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    row = bench.train_row((2, 3, 4, 5, 2, True), repeats=1, gemm=1.0, warmup_s=0.0, min_s=0.0)
    assert set(row["ms"]) == {"lstmkit", "torch", "reference"}
    assert set(row["ratio"]) == {"torch", "reference"}
    assert "train" in bench.format_row(row)
    ms, fraction = row["ms"], row["gemm_fraction"]
    # meeting the target = running at 1.3x torch's speed, so at 1.3x its share of the rate
    assert row["target_needs"] == pytest.approx(bench.TRAIN_TARGET * fraction["torch"])
    assert fraction["lstmkit"] / fraction["torch"] == pytest.approx(ms["torch"] / ms["lstmkit"])
    # against a measured peak instead: the same GFLOP/s as a share of it
    row = bench.train_row((2, 3, 4, 5, 1, False), 1, 1.0, False, 2.0, warmup_s=0.0, min_s=0.0)
    assert row["target_needs"] == pytest.approx(bench.TRAIN_TARGET * row["gflops"]["torch"] / 2)
    peak = bench.fma_peak(2, seconds=0.01)
    assert peak is None or peak > 0
    # restated against rates measured again (twice as high): every share halves
    needs, share = row["target_needs"], row["gemm_fraction"]["torch"]
    result = {"gemm": 1.0, "peak": 2.0, "rows": [row]}
    bench.rescale(result, 2.0, 4.0)
    (again,) = result["rows"]
    assert again["target_needs"] == pytest.approx(needs / 2)
    assert again["gemm_fraction"]["torch"] == pytest.approx(share / 2)
    assert (result["gemm"], result["peak"]) == (2.0, 4.0)
    assert bench.lstm_flops(1, 1, 3, 2, 1, False) == 2 * 4 * 2 * (3 + 2)


@pytest.mark.parametrize(
    "argv",
    [
        ["--quick", "--json", "out.json"],
        ["--", "--quick", "--json", "out.json"],
        ["--json", "out.json", "--no-memory", "--repeats", "3"],
        [],
    ],
)
def test_bench_command_passes_every_argument_on(argv: list[str], monkeypatch: Any) -> None:
    """`lstmkit bench --json out.json` reaches the script as given (an option first was
    rejected by argparse once)."""
    from lstmkit.cli import app as cli
    from lstmkit.cli import bench

    calls: list[list[str]] = []
    monkeypatch.setattr(bench.subprocess, "call", lambda cmd: calls.append(cmd) or 0)
    assert cli.main(["bench", *argv]) == 0
    assert calls[0][2:] == [a for a in argv if a != "--"]


@pytest.mark.parametrize(
    "kwargs",
    [{}, {"num_layers": 2}, {"proj_size": 3}, {"bias": False}, {"forget_gate": False}],
    ids=str,
)
@pytest.mark.parametrize("unbatched", [False, True])
@pytest.mark.parametrize("threads", [1, 2])
def test_streaming_step_equals_reference(
    kwargs: dict[str, Any], unbatched: bool, threads: int
) -> None:
    fused, reference = (lk.LSTM(5, 7, seed=0, **kwargs) for _ in range(2))
    # split the weight rows across threads whatever the size
    fused.execution = lk.Execution(impl="fused", parallel_weights=0, threads=threads)
    reference.impl = "reference"
    rng = np.random.default_rng(0)
    state_f = state_r = None
    for _ in range(4):
        x = rng.standard_normal(5 if unbatched else (3, 5)).astype(np.float32)
        y_f, state_f = fused.step(x, state_f)
        y_r, state_r = reference.step(x, state_r)
        assert y_f.shape == y_r.shape
        assert rel_err(y_f, y_r) < TOL[np.float32]
        for a, b in zip(state_f, state_r, strict=True):
            assert a.shape == b.shape
            assert rel_err(a, b) < TOL[np.float32]
    # the kernel reads the live weights
    for layer in (fused, reference):
        layer.parameters()["weight_hh_l0"] *= 2.0
    assert rel_err(fused.step(x, state_f)[0], reference.step(x, state_r)[0]) < TOL[np.float32]


def test_streaming_step_falls_back_and_validates() -> None:
    layer = lk.LSTM(3, 4, seed=0)
    x = np.ones((2, 3), np.float32)
    bad = x.copy()
    bad[1, 2] = np.nan
    with pytest.raises(ValueError, match="expected finite values"):
        layer.step(bad)
    state = (np.zeros((1, 2, 4), np.float32), np.full((1, 2, 4), np.inf, np.float32))
    with pytest.raises(ValueError, match="expected finite values"):
        layer.step(x, state)
    with pytest.raises(ValueError, match="expected shape"):
        layer.step(x, (np.zeros((1, 3, 4), np.float32),) * 2)
    with pytest.raises(TypeError, match="expected dtype float32"):
        layer.step(x.astype(np.float64))
    y_int, _ = layer.step(x.astype(np.int64))  # not float32: the reference path converts it
    y_arr, _ = layer.step(x)
    assert y_int.shape == y_arr.shape
    assert rel_err(y_int, y_arr) < TOL[np.float32]


@pytest.mark.parametrize("H", [64, 256])
def test_float32_larger_hidden(H: int) -> None:
    """Sizes where the compiled loops switch to their register-sum products (K >= 256)."""
    cfg = {**CONFIGS[-8], "hidden_size": H, "T": 4, "N": 5, "lengths": True}
    cfg["bidirectional"] = True
    fused, reference = _fused_and_reference(cfg, np.float32)
    case = random_case(fused, cfg, np.random.default_rng(10), np.float32)
    _compare(lk_run(fused, case), lk_run(reference, case), TOL[np.float32])


def test_parallel_parts(monkeypatch: pytest.MonkeyPatch) -> None:
    ex = lk.Execution(threads=2)
    assert parallel.parts(10, ex.min_work, ex) == [slice(0, 5), slice(5, 10)]
    assert parallel.parts(10, ex.min_work - 1, ex) == [slice(0, 10)]  # not worth threads
    assert parallel.parts(2 * ex.min_rows - 1, ex.min_work, ex) == [slice(0, 7)]
    assert parallel.parts(10, ex.min_work, ex.with_threads(1)) == [slice(0, 10)]
    monkeypatch.setattr(parallel, "_blas_controller", lambda: None)  # no threadpoolctl
    assert parallel.parts(10, ex.min_work, ex, uses_blas=True) == [slice(0, 10)]
    assert len(parallel.parts(10, ex.min_work, ex, uses_blas=lambda rows: rows > 5)) == 2
    seen: list[int] = []
    parallel.run(seen.append, [0, 1, 2])
    assert sorted(seen) == [0, 1, 2]
    nested: list[int] = []  # run from a worker thread runs inline instead of waiting on it
    parallel.run(lambda i: parallel.run(nested.append, [i, i + 10]), [0, 1])
    assert sorted(nested) == [0, 1, 10, 11]


def test_small_work_runs_blas_on_one_thread() -> None:
    """parallel.split keeps BLAS to one thread while it runs work too small to share (or
    when one thread is allowed), leaves BLAS's own threads to large unsplit work, and
    restores the library's setting afterwards. (The BLAS libraries loaded when lstmkit
    first split work: NumPy's; one loaded later, as SciPy's, is not NumPy's matmul.)"""
    from threadpoolctl import threadpool_info

    ours = {lib.filepath for lib in parallel._blas_controller().lib_controllers}

    def blas_threads() -> list[int]:
        info = threadpool_info()
        return [i["num_threads"] for i in info if i["user_api"] == "blas" and i["filepath"] in ours]

    before = blas_threads()
    if max(before, default=1) < 2:
        pytest.skip("BLAS runs one thread here already")
    ex = lk.Execution(threads=2)
    seen: dict[str, list[int]] = {}
    parallel.split(lambda rows: seen.setdefault("small", blas_threads()), 10, 1, ex)
    parallel.split(lambda rows: seen.setdefault("one", blas_threads()), 10, ex.min_work,
                   ex.with_threads(1))  # fmt: skip
    parallel.split(lambda rows: seen.setdefault("rows", blas_threads()), 1, ex.min_work, ex)
    assert seen == {"small": [1] * len(before), "one": [1] * len(before), "rows": before}
    assert blas_threads() == before


def test_bidirectional_output_written_in_place() -> None:
    """The fused bidirectional layer writes both directions' y into its output (no
    concatenation): each direction's tape keeps h_prev as a view of that array; backward
    reads dy's columns where they are and leaves dy as given; everything equals the
    reference's to float32 rounding."""
    rng = np.random.default_rng(3)
    layers = [lk.LSTM(6, 8, num_layers=2, bidirectional=True, seed=2) for _ in range(2)]
    layers[0].execution = _execution("cells split", impl="fused")
    layers[1].impl = "reference"
    x = rng.standard_normal((5, 3, 6)).astype(np.float32)
    dy = rng.standard_normal((5, 3, 16)).astype(np.float32)
    dy_given = dy.copy()
    (y, _), (y_ref, _) = (layer(x) for layer in layers)
    for tape in layers[0]._tape["tapes"][2:]:  # the last layer's two directions
        assert np.shares_memory(tape.h_prev, y)
    (dx, _), (dx_ref, _) = (layer.backward(dy) for layer in layers)
    np.testing.assert_array_equal(dy, dy_given)
    assert rel_err(y, y_ref) < 2e-5 and rel_err(dx, dx_ref) < 2e-5
    for name, g in layers[1].grads.items():
        assert rel_err(layers[0].grads[name], g) < 2e-5, name


def test_weight_gradients_in_blocks_of_rows_are_the_whole_products() -> None:
    """add_product_t sums a weight's gradient a block of rows at a time: the same bits as
    the one product over all rows (what keeps the blocks free of any change of results)."""
    rng = np.random.default_rng(4)
    a = rng.standard_normal((1600, 1024)).astype(np.float32)  # dz (T*N, 4H)
    b = rng.standard_normal((1600, 96)).astype(np.float32)  # x (T*N, I)
    acc0 = rng.standard_normal((1024, 96)).astype(np.float32)
    whole = acc0 + a.T @ b
    for rows in (512, 700, 1024):
        acc = acc0.copy()
        fast_lstm.add_product_t(acc, a, b, rows)
        np.testing.assert_array_equal(acc, whole)


@pytest.mark.parametrize("options", [{}, {"recurrent_dropout": 0.3, "zoneout": (0.2, 0.1)}])
def test_loop_back_by_rows_equals_by_cells(options: dict[str, Any], monkeypatch: Any) -> None:
    """The split loops on two threads, each on a block of rows (every cell, no wait per
    step) or on a block of cells (every row), the forward (in training) and the loop back
    each way: every result bit for bit, padded steps and the regularisers included (a
    product's rows are the same sums either way, which lets ``Execution.rows_forward_up_to``
    and ``rows_backward_up_to`` choose by speed alone)."""
    rng = np.random.default_rng(6)
    T, N, I, H = 7, 13, 24, 64
    x = rng.standard_normal((T, N, I)).astype(np.float32)
    dy = rng.standard_normal((T, N, H)).astype(np.float32)
    lengths = [7] * 6 + [4] * 4 + [1] * 3
    layouts: list[tuple[str, int, int]] = []

    def recording(name: str) -> Any:
        real = getattr(cell_split, name)

        def loop(part: Any, *args: Any) -> None:
            layouts.append((name, part.parts, part.r1 - part.r0))
            real(part, *args)

        return loop

    for name in ("forward", "backward"):
        monkeypatch.setattr(cell_split, name, recording(name))
    results = []
    for forward_up_to, backward_up_to in ((0, 0), (2**62, 0), (2**62, 2**62)):
        layer = lk.LSTM(I, H, seed=3, **options)
        layer.execution = lk.Execution(impl="fused", split_from=0, min_work=0, min_cells=1,
                                       threads=2, rows_forward_up_to=forward_up_to,
                                       rows_backward_up_to=backward_up_to)  # fmt: skip
        y, state = layer(x, lengths=lengths)
        dx, dstate = layer.backward(dy)
        results.append([y, *state, dx, *dstate, *layer.grads.values()])
    runs = [sorted(layouts[i : i + 4]) for i in (0, 4, 8)]  # each run's 2 + 2 parts
    cells, rows = [(2, N), (2, N)], [(1, 6), (1, 7)]
    expected = [(cells, cells), (rows, cells), (rows, rows)]  # (forward, backward)
    assert runs == [[("backward", *b) for b in back] + [("forward", *f) for f in fwd]
                    for fwd, back in expected]  # fmt: skip
    for cells, forward_rows, both_rows in zip(*results, strict=True):
        np.testing.assert_array_equal(forward_rows, cells)
        np.testing.assert_array_equal(both_rows, cells)

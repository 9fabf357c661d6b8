"""The int8 Linears of one paper-size GPT step: the native kernel (``NativeInt8Linear``) against fbgemm.

    python scripts/benchmark_int8_linear.py                     # rows 1 2 4 10 16 32 212, 2 threads
    python scripts/benchmark_int8_linear.py --rows 1 10 --threads 1

The 96 Linears of 24 layers (fused qkv 1024 -> 3072, proj 1024 -> 1024, fc1 1024 -> 4096, fc2 4096 -> 1024;
random per-channel qint8 weights, 302 MB) are called in order, as a decoding step does, so every weight byte
comes from memory; min and median over ``--repeats`` steps per row count. Also timed: making the layers
(native: a view of the qint8 storage; fbgemm: packing). Outputs are checked bit-equal first. Last line:
``rows=<first --rows> native_ms=<min> fbgemm_ms=<min> native_prepare_s=<..> fbgemm_prepare_s=<..>``.
"""
from __future__ import annotations

import argparse
import time

import torch

from specvqgan.modules.transformer.int8_linear import FbgemmInt8Linear, NativeInt8Linear, int8_linear, quantize_int8

SHAPES = [(3072, 1024), (1024, 1024), (4096, 1024), (1024, 4096)] * 24   # (out, in) of one step


def _step_ms(layers, xs, repeats: int) -> tuple[float, float]:
    def step():
        for (_, k), lin in zip(SHAPES, layers):
            lin(xs[k])
    step()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        step()
        times.append(time.perf_counter() - t)
    times.sort()
    return times[0] * 1e3, times[len(times) // 2] * 1e3


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--rows', type=int, nargs='+', default=[1, 2, 4, 10, 16, 32, 212])
    p.add_argument('--threads', type=int, default=2)
    p.add_argument('--repeats', type=int, default=10)
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    if NativeInt8Linear.kernel() is None:
        raise SystemExit('the native int8 kernel cannot be built here (no C++ compiler or SPECVQGAN_NATIVE=0)')
    torch.manual_seed(0)
    weights = [(quantize_int8(torch.randn(o, i) * 0.02), torch.randn(o) * 0.01) for o, i in SHAPES]
    t = time.perf_counter()
    native = [int8_linear(w, b) for w, b in weights]
    prep_native = time.perf_counter() - t
    t = time.perf_counter()
    fbgemm = [FbgemmInt8Linear(w, b) for w, b in weights]
    prep_fbgemm = time.perf_counter() - t
    print(f'{a.threads} threads; {sum(o * i for o, i in SHAPES) / 1e6:.0f} M int8 weights in {len(SHAPES)} Linears')
    print(f'making the layers: native {prep_native:.3f} s, fbgemm (packing) {prep_fbgemm:.2f} s')
    print(f'{"rows":>5} {"native min/median ms":>22} {"fbgemm min/median ms":>22}')
    first = {}
    for m in a.rows:
        xs = {k: torch.randn(m, 1, k) for k in (1024, 4096)}
        for lin_n, lin_f in zip(native[:4], fbgemm[:4]):
            x = xs[lin_n.w8.shape[1]]
            assert torch.equal(lin_n(x), lin_f(x)), 'native and fbgemm outputs differ'
        nat, fb = _step_ms(native, xs, a.repeats), _step_ms(fbgemm, xs, a.repeats)
        first.setdefault('m', m), first.setdefault('n', nat[0]), first.setdefault('f', fb[0])
        print(f'{m:>5} {nat[0]:>10.1f} / {nat[1]:<9.1f} {fb[0]:>10.1f} / {fb[1]:<9.1f}')
    print(f"rows={first['m']} native_ms={first['n']:.2f} fbgemm_ms={first['f']:.2f} "
          f'native_prepare_s={prep_native:.3f} fbgemm_prepare_s={prep_fbgemm:.2f}')


if __name__ == '__main__':
    main()

"""Sampling speed: the reference-style loop (whole sequence recomputed for every token) against the
KV-cached sampler of ``specvqgan.sampling``, with identical weights, on CPU.

    python scripts/benchmark_sampling.py                      # paper + small size, batch 1 and 10
    python scripts/benchmark_sampling.py --sizes small --precisions fp32 --batches 1   # quick look
    python scripts/benchmark_sampling.py --precisions fp32,int8,int8+torch

Precisions: fp32 (the model itself), bf16 / int8 (``prepare_gpt``: the FastGPT inference copy, its
one-query attention in the C++ kernel of ``fast_decode.NativeDecodeAttention``) and ``<precision>+torch`` (the
same copy with the attention in plain torch ops: what the kernel buys).

A "10 s sample" is 265 tokens (5 x 53) after 212 visual features (paper size: 24 layers x 1024 wide x
16 heads, vocab 1024, 307 M GPT parameters, random weights). The reference loop at paper size takes
minutes per sample, so it is timed on ``--ref-steps`` forwards at evenly spaced sequence lengths and
extrapolated to 265 steps (its cost per step grows linearly with the length; this is said in the output;
larger batches: one forward at the middle length).
Reduced precision is reported with its cost: the max |logit| difference and the greedy-token agreement
against fp32 (teacher-forced over 265 positions, and the free-running greedy sequence).

The last line is machine-readable (paper size, fastest precision that was measured):
    speedup_vs_reference=<x> seconds_per_10s_batch1=<y> seconds_per_10s_batch10=<z>
"""
from __future__ import annotations

import argparse
import os
import sys
import time


def _wait_policy(argv: list[str]) -> str:
    """The ``--omp-wait-policy`` value, read before torch starts its OpenMP runtime."""
    for i, a in enumerate(argv):
        if a.startswith('--omp-wait-policy='):
            return a.split('=', 1)[1]
        if a == '--omp-wait-policy' and i + 1 < len(argv):
            return argv[i + 1]
    return 'default'


# libgomp's default (spin briefly, then sleep) is the fastest on a quiet machine: a paper-size int8 step
# takes 19 ms with it, 35 ms with PASSIVE (every small op then wakes sleeping threads). On a machine
# shared with other busy processes PASSIVE avoids spinning threads starving them (``--omp-wait-policy passive``).
if _wait_policy(sys.argv) != 'default':
    os.environ['OMP_WAIT_POLICY'] = _wait_policy(sys.argv).upper()

import torch  # noqa: E402

from specvqgan.modules.transformer.mingpt import GPTFeats  # noqa: E402
from specvqgan.sampling import full_logits, prepare_gpt, sample_tokens  # noqa: E402

SIZES = {  # n_layer, n_head, n_embd
    'paper': (24, 16, 1024),
    'small': (8, 8, 512),
    'tiny': (2, 2, 128),   # smoke test
}
N_FEATS, FEAT_DEPTH, N_TOKENS, VOCAB = 212, 2048, 265, 1024


def build(size: str, p_uncond: float = 0.0) -> GPTFeats:
    """A random-weight GPTFeats of ``size``; ``p_uncond > 0`` adds the null condition guidance needs."""
    n_layer, n_head, n_embd = SIZES[size]
    torch.manual_seed(0)
    gpt = GPTFeats({'target': 'torch.nn.Conv1d', 'params': {'in_channels': FEAT_DEPTH, 'out_channels': n_embd,
                                                            'kernel_size': 1}},
                   {'vocab_size': VOCAB, 'block_size': N_FEATS + N_TOKENS, 'n_layer': n_layer,
                    'n_head': n_head, 'n_embd': n_embd, 'p_uncond': p_uncond})
    with torch.no_grad():
        gpt.pos_emb.normal_(0, 0.02)
    return gpt.eval()


def make_low(gpt, name: str):
    """'fp32' | 'bf16' | 'int8', optionally '+torch' -> the inference copy."""
    prec, _, extra = name.partition('+')
    if extra not in ('', 'torch'):
        raise SystemExit(f'unknown precision variant {name!r}: use <precision> or <precision>+torch')
    return prepare_gpt(gpt, prec, native=extra != 'torch')


@torch.inference_mode()
def time_cached(gpt, feats, batch: int, repeats: int, guidance_scale: float = 1.0) -> float:
    """Best wall time of sampling N_TOKENS tokens for ``batch`` samples of one condition."""
    best = float('inf')
    for r in range(repeats):
        t = time.perf_counter()
        sample_tokens(gpt, feats, N_TOKENS, num_samples=batch, top_k=100, seed=r, guidance_scale=guidance_scale)
        best = min(best, time.perf_counter() - t)
    return best


@torch.inference_mode()
def time_reference(gpt, feats, batch: int, ref_steps: int) -> float:
    """Extrapolated time of the reference loop: forwards of [212 feats ; k tokens] at ``ref_steps``
    evenly spaced k in [0, 264], averaged (the cost is ~linear in k), times 265 steps."""
    c = feats.repeat(batch, 1, 1)
    ks = torch.linspace(0, N_TOKENS - 1, ref_steps).round().long().tolist() if ref_steps > 1 else [N_TOKENS // 2]
    times = []
    for k in ks:
        x = torch.randint(0, VOCAB, (batch, k))
        t = time.perf_counter()
        logits, _ = full_logits(gpt, x, c)
        torch.multinomial(torch.softmax(logits[:, -1], -1), 1)
        times.append(time.perf_counter() - t)
    return sum(times) / len(times) * N_TOKENS


@torch.inference_mode()
def calibrate(gpt, batch: int = 1, repeats: int = 20) -> float:
    """Seconds per token of the GPT's Linear layers alone, applied one after another (a machine
    reference: weights must be read once per step; no attention, norms or Python overhead)."""
    linears = [m for m in gpt.modules() if isinstance(m, torch.nn.Linear)]
    x = {n: torch.randn(batch, n, dtype=gpt.pos_emb.dtype) for n in {m.in_features for m in linears}}
    best = float('inf')
    for _ in range(3):
        t = time.perf_counter()
        for _ in range(repeats):
            for m in linears:
                m(x[m.in_features])
        best = min(best, (time.perf_counter() - t) / repeats)
    return best


@torch.inference_mode()
def precision_cost(gpt, low, feats) -> tuple[float, float, float]:
    """(max |logit diff|, teacher-forced argmax agreement, free-running greedy agreement) vs fp32."""
    x = sample_tokens(gpt, feats, N_TOKENS, top_k=100, seed=0)
    ref, _ = full_logits(gpt, x[:, :-1], feats)
    out, _ = full_logits(low, x[:, :-1], feats)
    ref, out = ref[:, N_FEATS - 1:].float(), out[:, N_FEATS - 1:].float()
    diff = (ref - out).abs().max().item()
    forced = (ref.argmax(-1) == out.argmax(-1)).float().mean().item()
    g_ref = sample_tokens(gpt, feats, N_TOKENS, greedy=True)
    g_low = sample_tokens(low, feats, N_TOKENS, greedy=True)
    free = (g_ref == g_low).float().mean().item()
    return diff, forced, free


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--sizes', default='paper,small', help='comma list of: ' + ', '.join(SIZES))
    p.add_argument('--batches', default='1,10', help='samples per condition, comma list')
    p.add_argument('--precisions', default='fp32,bf16,int8,int8+torch',
                   help='comma list of fp32, bf16, int8, <bf16|int8>+torch')
    p.add_argument('--ref-steps', type=int, default=3, help='reference forwards to time (extrapolated)')
    p.add_argument('--repeats', type=int, default=2, help='timed runs of ours (best is kept)')
    p.add_argument('--threads', type=int, default=2, help='torch threads (default 2)')
    p.add_argument('--omp-wait-policy', default='default', choices=['default', 'passive', 'active'],
                   help="OpenMP idle threads: libgomp's default (fastest on a quiet machine), passive (a "
                        'machine shared with busy processes) or active')
    p.add_argument('--guidance-scales', default=None,
                   help='comma list, e.g. 1,3: only time the KV-cache sampler per classifier-free guidance scale '
                        '(any scale != 1 runs the unconditional stream beside the conditional one)')
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    if args.guidance_scales:
        return guidance_cost(args)
    batches = [int(b) for b in args.batches.split(',')]
    precisions = args.precisions.split(',')
    rows, line = [], {}
    print(f'CPU, {args.threads} threads, OMP_WAIT_POLICY={os.environ.get("OMP_WAIT_POLICY", "unset")}; 10 s sample = {N_TOKENS} tokens after {N_FEATS} features; '
          f'reference loop timed on {args.ref_steps} forwards (batch 1; 1 '
          f'at mid length for larger batches) and extrapolated to {N_TOKENS} steps', flush=True)
    for size in args.sizes.split(','):
        gpt = build(size)
        n_params = sum(p.numel() for p in gpt.parameters())
        print(f'[{size}] GPT parameters: {n_params / 1e6:.1f} M', flush=True)
        feats = torch.randn(1, FEAT_DEPTH, N_FEATS)
        ours = {}
        for prec in precisions:
            low = make_low(gpt, prec)
            for b in batches:
                lin = calibrate(low, b) if prec == 'fp32' else float('nan')
                ours[prec, b] = time_cached(low, feats, b, args.repeats)
                print(f'[{size}] KV cache {prec}, batch {b}: {ours[prec, b] / b:.2f} s per sample, '
                      f'{ours[prec, b] / N_TOKENS * 1e3:.1f} ms per step; the bare Linear stack '
                      f'(machine reference): {lin * 1e3:.1f} ms per step', flush=True)
            if prec != 'fp32' and (size == 'paper' or len(args.sizes.split(',')) == 1):
                diff, forced, free = precision_cost(gpt, low, feats)
                print(f'[{size}] {prec} vs fp32: max |logit diff| {diff:.3g}, teacher-forced argmax agreement '
                      f'{forced:.1%}, free-running greedy tokens equal {free:.1%} '
                      f'(random-init weights: near-ties make this pessimistic)', flush=True)
            del low
        # batch > 1: one forward at the middle length (the loop's average cost) to keep the run short
        ref = {}
        for b in batches:
            ref[b] = time_reference(gpt, feats, b, args.ref_steps if b == 1 else 1)
            print(f'[{size}] reference loop, batch {b}: {ref[b] / b:.2f} s per sample (extrapolated)', flush=True)
            rows.append((size, 'reference loop (extrapolated)', 'fp32', b, ref[b] / b, b * N_TOKENS / ref[b], 1.0))
        for (prec, b), t in ours.items():
            rows.append((size, 'KV cache', prec, b, t / b, b * N_TOKENS / t, ref[b] / t))
            if size == 'paper':
                line.setdefault(prec, {})[b] = (t / b, ref[b] / t)
        del gpt
    print(f"\n{'size':6} {'sampler':30} {'prec':12} {'batch':>5} {'s / 10 s sample':>16} {'tokens/s':>9} {'speedup':>8}")
    for size, name, prec, b, sps, tps, speed in rows:
        print(f'{size:6} {name:30} {prec:12} {b:5d} {sps:16.2f} {tps:9.1f} {speed:7.1f}x')
    if line:
        best = min(line, key=lambda k: line[k].get(1, (float('inf'),))[0])
        b1 = line[best].get(1, (float('nan'), float('nan')))
        b10 = line[best].get(10, (float('nan'), float('nan')))
        print(f'paper size, {best}:')
        print(f'speedup_vs_reference={b1[1]:.1f} seconds_per_10s_batch1={b1[0]:.2f} seconds_per_10s_batch10={b10[0]:.2f}')


def guidance_cost(args) -> None:
    """Seconds per 10 s sample of the KV-cache sampler per guidance scale, precision and batch.
    Last line: ``guidance_cost <size>/<precision>: batch<b>_scale<s>=<seconds per sample> ...``."""
    scales = [float(x) for x in args.guidance_scales.split(',')]
    batches = [int(b) for b in args.batches.split(',')]
    line = []
    for size in args.sizes.split(','):
        gpt = build(size, p_uncond=0.1)
        feats = torch.randn(1, FEAT_DEPTH, N_FEATS)
        for prec in args.precisions.split(','):
            low = make_low(gpt, prec)
            for b in batches:
                base = None
                for s in scales:
                    t = time_cached(low, feats, b, args.repeats, guidance_scale=s) / b
                    base = t if base is None else base
                    print(f'[{size}] KV cache {prec}, batch {b}, guidance scale {s:g}: {t:.2f} s per sample '
                          f'({t / base:.2f}x the first scale)', flush=True)
                    line.append(f'{size}/{prec}/batch{b}_scale{s:g}={t:.2f}')
            del low
        del gpt
    print('guidance_cost ' + ' '.join(line))


if __name__ == '__main__':
    main()

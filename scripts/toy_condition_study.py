"""Does a trained transformer use its visual condition? (docs/toy_results.md)

``score``: validation cross-entropy of each checkpoint with its own features, with the features shuffled
across the clips of the split, and with uniform noise:

    python scripts/toy_condition_study.py score --ckpt logs/<real run>/checkpoints/best-*.ckpt \\
        logs/<random-feature run>/checkpoints/best-*.ckpt --shuffles 5

``seeds``: retrain the GPT of a config for several seeds, fast: the frozen codebook encodes every clip
once (the toy crops are fixed, so the tokens are the same at every epoch) and the GPT trains on the
cached tokens with the config's optimizer, lr, batch size, dropout, validation interval and early
stopping; a random-feature config draws new noise at every step, as its dataset does:

    python scripts/toy_condition_study.py seeds --base configs/toy/transformer.yaml --seeds 1 2 \\
        model.params.first_stage_config.params.ckpt_path=<codebook ckpt> lightning.trainer.max_steps=960

``score`` reads ``data.params.<split>`` of each checkpoint's stored training config (as
``scripts/sample_dataset.py``), so a model trained with ``replace_feats_with_random`` is scored on noise
in the "own" column as well. A model that uses its condition gets worse when the features are shuffled
(right content, wrong clip); a model that ignores it does not. Prints a Markdown table (loss in nats per
audio token, the quantity Lightning logs as ``val/loss``) and the per-column loss (10 latent time columns
for the toy clips). ``--json`` also writes the numbers.
"""
from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from omegaconf import OmegaConf
from torch.utils.data import DataLoader

from specvqgan.config import ConfigError, instantiate_from_config, load_config
from specvqgan.dataset_sampling import data_config
from specvqgan.models.cond_transformer import Net2NetTransformer


@torch.no_grad()
def split_tokens(model: Net2NetTransformer, dataset, batch_size: int = 64) -> tuple[torch.Tensor, torch.Tensor]:
    """All clips of ``dataset`` -> (column-major tokens (N, H*W), features (N, D, n_feats))."""
    tokens, feats = [], []
    for batch in DataLoader(dataset, batch_size=batch_size, shuffle=False):
        x, c = model.get_xc(batch)
        tokens.append(model.encode_to_z(x)[1])
        feats.append(c)
    return torch.cat(tokens), torch.cat(feats)


def token_losses(model: Net2NetTransformer, tokens: torch.Tensor, feats: torch.Tensor) -> torch.Tensor:
    """Cross-entropy of every audio token (N, H*W) given ``feats`` (N, D, n_feats) (teacher forcing)."""
    logits, _, _ = model.transformer(tokens[:, :-1], feats)
    logits = logits[:, model.transformer.cond_length(feats) - 1:]
    return F.cross_entropy(logits.reshape(-1, logits.size(-1)), tokens.reshape(-1),
                           reduction='none').view_as(tokens)


@torch.no_grad()
def shuffled_loss(model: Net2NetTransformer, tokens: torch.Tensor, feats: torch.Tensor, shuffles: int,
                  gen: torch.Generator) -> float:
    """Mean loss over ``shuffles`` random derangements of the features (every clip gets another's)."""
    n, losses = len(tokens), []
    for _ in range(shuffles):
        perm = torch.randperm(n, generator=gen)
        other = torch.empty_like(perm)
        other[perm] = perm.roll(-1)
        losses.append(token_losses(model, tokens, feats[other]).mean().item())
    return sum(losses) / len(losses)


@torch.no_grad()
def study(ckpt: str, split: str = 'validation', shuffles: int = 5, seed: int = 0) -> dict:
    """Losses (nats per audio token) of one checkpoint on ``split``: ``own`` features, ``shuffled`` (mean
    over ``shuffles`` random derangements: every clip gets another clip's features), ``noise`` (uniform
    [0, 1)) and ``own_per_column`` (W,): the ``own`` loss of each latent time column."""
    cfg = data_config(ckpt)
    if split not in cfg.data.params:
        raise ConfigError(f"{ckpt}: the stored data config has no split {split!r}")
    model = Net2NetTransformer.from_checkpoint(ckpt)
    np.random.seed(seed)        # the random-feature control draws its noise when items are read
    tokens, feats = split_tokens(model, instantiate_from_config(cfg.data.params[split]))
    n = len(tokens)
    if n < 2:
        raise ValueError(f"{ckpt}: split {split!r} has {n} clip(s); shuffling needs at least 2")
    gen = torch.Generator().manual_seed(seed)
    own = token_losses(model, tokens, feats)
    shuffled = shuffled_loss(model, tokens, feats, shuffles, gen) if shuffles else None
    noise = token_losses(model, tokens, torch.rand(feats.shape, generator=gen)).mean().item()
    H = getattr(model.first_stage_permuter, 'H', tokens.shape[1])
    per_col = own.view(n, -1, H).mean((0, 2))
    return {'ckpt': str(ckpt), 'clips': n, 'own': own.mean().item(),
            'shuffled': shuffled, 'noise': noise,
            'own_per_column': [round(v, 4) for v in per_col.tolist()]}


def train_seed(cfg, seed: int, log_every: int = 0) -> dict:
    """Train the config's GPT from scratch on cached tokens (see the module docstring) with ``seed``;
    returns the best validation loss, its step, the shuffled-feature loss of that best model and the
    number of steps run. ``cfg``: a merged training config (``load_config``)."""
    torch.manual_seed(seed)
    np.random.seed(seed)
    model = instantiate_from_config(cfg.model)
    batch = int(cfg.data.params.batch_size)
    model.base_learning_rate = float(cfg.model.base_learning_rate) * batch   # scaled_lr's factor outside a Trainer
    train_tok, train_feats = split_tokens(model.eval(), instantiate_from_config(cfg.data.params.train))
    val_tok, val_feats = split_tokens(model, instantiate_from_config(cfg.data.params.validation))
    noise = bool(OmegaConf.select(cfg, 'data.params.train.params.condition_dataset_cfg.replace_feats_with_random',
                                  default=False))
    opt = model.configure_optimizers()
    trainer = cfg.lightning.trainer
    max_steps = int(trainer.max_steps)
    val_every = int(trainer.get('check_val_every_n_epoch', 1)) * -(-len(train_tok) // batch)
    patience = int(OmegaConf.select(cfg, 'lightning.early_stopping.params.patience', default=10 ** 9))
    best, best_step, best_state, bad, step = float('inf'), 0, None, 0, 0
    model.train()
    while step < max_steps and bad < patience:
        for idx in torch.randperm(len(train_tok)).split(batch):
            feats = torch.rand_like(train_feats[idx]) if noise else train_feats[idx]
            loss = token_losses(model, train_tok[idx], feats).mean()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            step += 1
            if step % val_every == 0 or step == max_steps:
                model.eval()
                with torch.no_grad():
                    val = token_losses(model, val_tok, val_feats).mean().item()
                model.train()
                if log_every:
                    print(f'  seed {seed} step {step}: train {loss.item():.4f} val {val:.4f}', flush=True)
                if val < best:
                    best, best_step, bad = val, step, 0
                    best_state = {k: v.clone() for k, v in model.transformer.state_dict().items()}
                else:
                    bad += 1
            if step >= max_steps or bad >= patience:
                break
    model.transformer.load_state_dict(best_state)
    shuffled = shuffled_loss(model.eval(), val_tok, val_feats, 5, torch.Generator().manual_seed(seed))
    return {'seed': seed, 'features': 'noise' if noise else 'real', 'best_val_loss': best, 'best_step': best_step,
            'shuffled': shuffled, 'steps': step}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest='cmd', required=True)
    sc = sub.add_parser('score', help='losses of trained checkpoints with own / shuffled / noise features')
    sc.add_argument('--ckpt', nargs='+', required=True, help='transformer checkpoints (train.py .ckpt)')
    sc.add_argument('--split', default='validation')
    sc.add_argument('--shuffles', type=int, default=5, help='random derangements of the features to average')
    sc.add_argument('--seed', type=int, default=0)
    se = sub.add_parser('seeds', help='retrain a config for several seeds on cached tokens')
    se.add_argument('-b', '--base', nargs='+', required=True, help='training YAMLs, merged left to right')
    se.add_argument('--seeds', type=int, nargs='+', default=[0])
    se.add_argument('--verbose', action='store_true', help='print every validation')
    se.add_argument('overrides', nargs='*', help='key=value overrides')
    for q in (sc, se):
        q.add_argument('--json', default=None, help='also write the results here')
    a = p.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format='%(levelname)s %(name)s: %(message)s')
    rows = []
    try:
        if a.cmd == 'score':
            rows = [study(ckpt, a.split, a.shuffles, a.seed) for ckpt in a.ckpt]
        else:
            cfg = load_config(a.base, a.overrides)
            for seed in a.seeds:
                rows.append(train_seed(cfg, seed, log_every=a.verbose))
                print(rows[-1], flush=True)
    except (ConfigError, OSError, ValueError, RuntimeError) as err:
        print(f'error: {err}', file=sys.stderr)
        return 1
    if a.cmd == 'score':
        print('| checkpoint | clips | own features | shuffled features | noise |')
        print('|---|---|---|---|---|')
        for r in rows:
            print(f"| {r['ckpt']} | {r['clips']} | {r['own']:.4f} | {r['shuffled']:.4f} | {r['noise']:.4f} |")
        for r in rows:
            print(f"per-column loss (own features) {Path(r['ckpt']).parent.parent.name}: {r['own_per_column']}")
    else:
        print('| seed | features | best val/loss | at step | shuffled features | steps run |')
        print('|---|---|---|---|---|---|')
        for r in rows:
            print(f"| {r['seed']} | {r['features']} | {r['best_val_loss']:.4f} | {r['best_step']} | "
                  f"{r['shuffled']:.4f} | {r['steps']} |")
    if a.json:
        Path(a.json).write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == '__main__':
    sys.exit(main())

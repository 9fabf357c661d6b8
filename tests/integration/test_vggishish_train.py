"""train.py on configs/toy/vggishish.yaml: the checkpoint carries the training-split mel stats and is a
valid LPAPS checkpoint for the codebook loss."""
import subprocess
import sys

import numpy as np
import pytest
import torch

from specvqgan.data.toy import ToySpecs
from specvqgan.losses.lpaps import LPAPS
from specvqgan.losses.vqperceptual import VQLPAPSWithDiscriminator
from specvqgan.modules.classifiers.vggishish import compute_mel_stats

pytestmark = pytest.mark.slow


def test_toy_vggishish_cli_to_lpaps(repo_root, toy_root, tmp_path):
    logroot = tmp_path / 'logs'
    cmd = [sys.executable, 'train.py', '--base', 'configs/toy/vggishish.yaml', '-t', '--logdir', str(logroot),
           f'data.params.train.params.data_root={toy_root}', f'data.params.validation.params.data_root={toy_root}',
           'data.params.train.params.specs_dataset_cfg.random_crop=false', 'data.params.batch_size=2',
           'model.params.num_classes=3', 'lightning.trainer.max_epochs=2',
           'lightning.trainer.enable_progress_bar=false', 'lightning.trainer.enable_model_summary=false']
    out = subprocess.run(cmd, cwd=repo_root, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    (run,) = [p for p in logroot.iterdir() if p.is_dir()]
    last = run / 'checkpoints' / 'last.ckpt'
    assert list((run / 'checkpoints').glob('best-*.ckpt')), 'no best checkpoint by val/loss'
    ckpt = torch.load(last, map_location='cpu', weights_only=False)
    assert ckpt['config']['model']['target'].endswith('VGGishishClassifier')

    # stats = those of the (center-cropped) training split, mapped back to [0, 1]
    train = ToySpecs("train", data_root=str(toy_root), random_crop=False)
    means, stds = compute_mel_stats((train[i]['image'] + 1) / 2 for i in range(len(train)))
    np.testing.assert_allclose(ckpt['state_dict']['train_means'].numpy(), means, rtol=1e-5)
    np.testing.assert_allclose(ckpt['state_dict']['train_stds'].numpy(), stds, rtol=1e-5)

    lpaps = LPAPS(ckpt_path=str(last))
    assert lpaps.chns == [16, 32, 64, 64, 64]
    x = torch.from_numpy(np.stack([train[i]['image'] for i in range(2)]))[:, None]
    assert lpaps(x, x).abs().max() == 0 and (lpaps(x, x.flip(0)) > 0).all()
    loss = VQLPAPSWithDiscriminator(disc_start=0, disc_in_channels=1, perceptual_weight=1.0,
                                    perceptual_ckpt=str(last)).eval()
    with torch.no_grad():
        _, log = loss(torch.tensor(0.0), x, x.flip(0), 0, global_step=0, split='val')
    assert log['val/p_loss'] > 0

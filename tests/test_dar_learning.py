"""DAR learns: a short training run of a small DAR on a small synthetic MOSI beats the mean predictor.

Slow-ish (one training run). Whether k > 0 makes DAR degrade less at test missing rate 0.5 is too
noisy to assert in this budget: ``bench/dar_missing_rate.py`` prints that comparison.
"""
import numpy as np
import torch

from dar_mmsa import runner

SMALL = dict(dim=32, aligned_len=16, encoder_heads=4, encoder_dim_head=8, encoder_mlp_dim=64, fusion_layers=1,
             fusion_heads=4, club_hidden=16, batch_size=32, learning_rate=1e-3, club_learning_rate=1e-3, dropout=0.0,
             max_epochs=6)


def test_short_training_beats_the_mean_predictor_on_validation(learning_root, small_bert, tmp_path):
    torch.manual_seed(0)
    args = runner.build_args("dar", "mosi", data_root=learning_root, pretrained=small_bert, seed=1111,
                             save_path=tmp_path / "dar.pth", overrides=SMALL)
    loaders = runner.load_data(args)
    model, trainer = runner.train(args, loaders)
    valid = trainer.do_test(model, loaders["valid"], mode="VAL")  # corrupted at k = 0.3, as in selection
    train_labels = np.asarray(loaders["train"].dataset.labels["M"])
    valid_labels = np.asarray(loaders["valid"].dataset.labels["M"])
    mean_predictor_mae = float(np.abs(valid_labels - train_labels.mean()).mean())
    assert valid["MAE"] < 0.9 * mean_predictor_mae, (valid["MAE"], mean_predictor_mae)

"""Inputs for model-level tests: MMSA-shaped random batches and a model's default args."""
import torch

# feature_dims, T_audio, T_vision of the unaligned pickles
SHAPES = {"mosi": ([768, 5, 20], 375, 500), "mosei": ([768, 74, 35], 500, 500)}


def model_args(defaults, name, dataset, pretrained, **overrides):
    """The args MMSA would merge for ``name`` on ``dataset`` from a model's DEFAULTS, plus overrides."""
    args = {"feature_dims": SHAPES[dataset][0]}  # MMSA's loader sets it from the data
    args.update(defaults["commonParams"], **defaults["datasetParams"][dataset])
    args.update(pretrained=pretrained, dataset_name=dataset, model_name=name)
    args.update(overrides)
    return args


def text_batch(batch=2, length=50, real=(12, 7)):
    """(B, 3, L) ids/mask/segments: [CLS] words [SEP] then padding, real lengths cycling through ``real``."""
    text = torch.zeros(batch, 3, length)
    for i in range(batch):
        n = real[i % len(real)]
        text[i, 0, :n] = torch.randint(110, 500, (n,)).float()
        text[i, 0, 0], text[i, 0, n - 1] = 101, 102
        text[i, 1, :n] = 1
    return text


def inputs(dataset, batch=2):
    dims, t_audio, t_vision = SHAPES[dataset]
    return text_batch(batch), torch.randn(batch, t_audio, dims[1]), torch.randn(batch, t_vision, dims[2])

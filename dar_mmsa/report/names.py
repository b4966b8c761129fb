"""The names tables and figures print for models and datasets."""
from __future__ import annotations

# MMSA 2.2.1's models, spelled as their papers (and the DAR paper's Table 1) spell them.
MMSA_DISPLAY_NAMES = {
    "misa": "MISA", "self_mm": "Self-MM", "mmim": "MMIM", "tfr_net": "TFR-Net", "mult": "MulT",
    "tfn": "TFN", "lmf": "LMF", "mfn": "MFN", "ef_lstm": "EF-LSTM", "lf_dnn": "LF-DNN",
    "graph_mfn": "Graph-MFN", "mctn": "MCTN", "bert_mag": "BERT-MAG", "mfm": "MFM", "mtfn": "MTFN",
    "mlmf": "MLMF", "mlf_dnn": "MLF-DNN",
}
DATASET_DISPLAY_NAMES = {"mosi": "MOSI", "mosei": "MOSEI", "sims": "CH-SIMS"}


def model_display_name(model: str) -> str:
    """Our registry's ``display`` label, MMSA's usual spelling, or the name itself."""
    from ..registry import get_entry, our_models

    if model.lower() in our_models():
        return get_entry(model).display_name
    return MMSA_DISPLAY_NAMES.get(model.lower(), model)


def dataset_display_name(dataset: str) -> str:
    return DATASET_DISPLAY_NAMES.get(dataset.lower(), dataset.upper())

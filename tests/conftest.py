"""Shared fixtures: a tiny offline BERT and a small synthetic MOSI/MOSEI root, built once per pytest run."""
import os

# The tests never reach the hub: offline mode is set here, before anything imports transformers or
# huggingface_hub (which read it once, at import), and subprocesses the tests start inherit it.
# dar_mmsa itself leaves these variables alone.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"

import logging  # noqa: E402

import pytest  # noqa: E402
import torch  # noqa: E402

# The tests' models are tiny: one intra-op thread avoids OpenMP oversubscription on 2 cores
torch.set_num_threads(int(os.environ.get("DAR_MMSA_TEST_THREADS", "1")))


@pytest.fixture(autouse=True)
def _close_mmsa_log_handlers():
    """MMSA_run adds a file and a stream handler to the 'MMSA' logger on every call (stock MMSA):
    the tests' many runs in one process would stack them, so each test ends with none."""
    yield
    logger = logging.getLogger("MMSA")
    for handler in list(logger.handlers):
        logger.removeHandler(handler)
        handler.close()


@pytest.fixture(scope="session")
def tiny_bert(tmp_path_factory):
    """A 1-layer, 768-wide random BERT with the synthetic vocabulary, in a local directory."""
    from dar_mmsa.text_encoder import write_tiny_bert

    return str(write_tiny_bert(tmp_path_factory.mktemp("bert") / "tiny-bert", num_layers=1))


@pytest.fixture(scope="session")
def synthetic_root(tmp_path_factory):
    """MOSI and MOSEI synthetic pickles (aligned and unaligned) at 4% of the real split sizes."""
    from dar_mmsa.data.synthetic import write_synthetic

    root = tmp_path_factory.mktemp("data")
    write_synthetic(root, datasets=("mosi", "mosei"), scale=0.04, seed=0)
    return str(root)


@pytest.fixture(scope="session")
def small_mosi_root(tmp_path_factory):
    """MOSI synthetic pickles (aligned and unaligned) with 16/8/9 samples, for the costliest models."""
    from dar_mmsa.data.synthetic import write_synthetic

    root = tmp_path_factory.mktemp("small-mosi")
    write_synthetic(root, datasets=("mosi",), scale=0.0125, seed=0)
    return str(root)


@pytest.fixture(scope="session")
def learning_root(tmp_path_factory):
    """MOSI synthetic pickles at 30% of the real split sizes (385/69/206): the learning tests' data."""
    from dar_mmsa.data.synthetic import write_synthetic

    root = tmp_path_factory.mktemp("learning-mosi")
    write_synthetic(root, datasets=("mosi",), scale=0.3, seed=0)
    return str(root)


@pytest.fixture(scope="session")
def small_bert(tmp_path_factory):
    """A 1-layer, 64-wide random BERT: the learning tests' text encoder (the step is not all BERT)."""
    from dar_mmsa.text_encoder import write_tiny_bert

    return str(write_tiny_bert(tmp_path_factory.mktemp("bert64") / "bert", num_layers=1, hidden_size=64,
                               num_heads=4, intermediate_size=64))


@pytest.fixture
def run_kwargs(tiny_bert, synthetic_root, tmp_path):
    """Keyword arguments for ``dar_mmsa.runner.build_args`` / ``run_once`` on the synthetic data."""
    return dict(data_root=synthetic_root, pretrained=tiny_bert, device="cpu", seed=1111,
                save_path=tmp_path / "model.pth")


def registered_test_model(name, module, config_path, *, learning_rate, max_epochs, display):
    """Register ``module`` as model ``name`` (our base Trainer, MOSI/MOSEI defaults), write the config
    file with it to ``config_path`` and yield that path; the model is unregistered afterwards."""
    from dar_mmsa import registry
    from dar_mmsa.config import write_config

    params = {"batch_size": 8, "learning_rate": learning_rate, "pretrained": "bert-base-uncased"}
    defaults = {"commonParams": {"need_data_aligned": False, "need_model_aligned": False, "use_bert": True,
                                 "early_stop": 2, "max_epochs": max_epochs},
                "datasetParams": {"mosi": dict(params), "mosei": dict(params)}}
    registry.register_model(name, trainer="dar_mmsa.training.base:Trainer", defaults=defaults,
                            display=display)(module)
    try:
        yield write_config(config_path)
    finally:
        registry._MODELS.pop(name)

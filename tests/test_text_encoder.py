"""Text-encoder helpers: tiny BERT, pretrained resolution (local, cached, downloaded), tokenizer check."""
import os
import shutil
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from dar_mmsa import text_encoder as TE
from dar_mmsa.data import synthetic as S
from dar_mmsa.errors import PretrainedError


@pytest.fixture
def clean_env(monkeypatch, tmp_path):
    """An empty Hugging Face cache and no DAR_MMSA_PRETRAINED."""
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf_home"))
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    monkeypatch.delenv(TE.ENV_PRETRAINED, raising=False)
    return tmp_path


def _assert_one_line_error(info, *parts):
    message = str(info.value)
    assert "\n" not in message
    for part in parts:
        assert part in message, (part, message)


def test_tiny_bert_files(tiny_bert):
    names = set(os.listdir(tiny_bert))
    assert {"config.json", "model.safetensors", "vocab.txt", "tokenizer_config.json"} <= names
    vocab = Path(tiny_bert, "vocab.txt").read_text().splitlines()
    assert len(vocab) == S.VOCAB_SIZE
    assert [vocab[i] for i in (0, 1, 99, 100, 101, 102, 103)] == [
        "[PAD]", "[unused0]", "[unused98]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    assert vocab[S.FIRST_WORD_ID:] == S.vocab_words()


def test_tiny_bert_runs_on_synthetic_ids(tiny_bert, synthetic_root):
    import pickle

    from transformers import BertModel

    model = BertModel.from_pretrained(tiny_bert, local_files_only=True).eval()
    assert model.config.hidden_size == 768
    with open(S.feature_path(synthetic_root, "mosi", False), "rb") as f:
        text = torch.from_numpy(pickle.load(f)["test"]["text_bert"][:3])
    with torch.no_grad():
        out = model(input_ids=text[:, 0].long(), attention_mask=text[:, 1],
                    token_type_ids=text[:, 2].long())[0]
    assert out.shape == (3, 50, 768) and torch.isfinite(out).all()


def test_tokenizer_full_vocab_and_special_ids(tiny_bert, synthetic_root):
    import pickle

    tokenizer = TE.check_tokenizer(tiny_bert)
    assert len(tokenizer) == S.VOCAB_SIZE
    assert tokenizer.convert_ids_to_tokens([0, 100, 101, 102, 103]) == [
        "[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    # raw_text tokenises to exactly the ids stored in text_bert
    with open(S.feature_path(synthetic_root, "mosi", True), "rb") as f:
        split = pickle.load(f)["train"]
    encoded = tokenizer(list(split["raw_text"][:8]), padding="max_length", max_length=50,
                        truncation=True)
    assert np.array_equal(np.array(encoded["input_ids"]), split["text_bert"][:8, 0].astype(int))
    assert np.array_equal(np.array(encoded["attention_mask"]), split["text_bert"][:8, 1].astype(int))


def test_write_tiny_bert_is_idempotent_and_seeded(tiny_bert, tmp_path):
    weights = Path(tiny_bert, "model.safetensors")
    before = weights.stat().st_mtime_ns
    assert TE.write_tiny_bert(tiny_bert, num_layers=1) == Path(tiny_bert)
    assert weights.stat().st_mtime_ns == before
    # a different config in the same place is rewritten; the RNG state of the caller is untouched
    other = tmp_path / "copy"
    shutil.copytree(tiny_bert, other)
    state = torch.random.get_rng_state()
    TE.write_tiny_bert(other, num_layers=2, intermediate_size=64)
    assert torch.equal(state, torch.random.get_rng_state())
    assert '"num_hidden_layers": 2' in (other / "config.json").read_text()
    assert not any(p.name.startswith(".copy.") for p in tmp_path.iterdir())  # staging cleaned up


def test_tiny_bert_rejects_bad_heads(tmp_path):
    with pytest.raises(PretrainedError, match="num_heads"):
        TE.write_tiny_bert(tmp_path / "bad", num_heads=5)


def test_resolve_local_directory(tiny_bert, clean_env):
    assert TE.resolve_pretrained(tiny_bert) == tiny_bert


def test_resolve_env_var(tiny_bert, clean_env, monkeypatch):
    monkeypatch.setenv(TE.ENV_PRETRAINED, tiny_bert)
    assert TE.resolve_pretrained(None) == tiny_bert
    assert TE.resolve_pretrained("") == tiny_bert


@pytest.mark.parametrize("given", [None, ""])
def test_resolve_nothing_given(clean_env, given):
    with pytest.raises(PretrainedError) as info:
        TE.resolve_pretrained(given)
    _assert_one_line_error(info, "--pretrained", TE.ENV_PRETRAINED)


def test_resolve_nonexistent_path_fast(clean_env):
    start = time.monotonic()
    missing = str(clean_env / "no" / "such" / "bert")
    with pytest.raises(PretrainedError) as info:
        TE.resolve_pretrained(missing)
    assert time.monotonic() - start < 5
    _assert_one_line_error(info, f"BERT weights '{missing}' are not available offline",
                           "--pretrained /path/to/bert-base-uncased", TE.ENV_PRETRAINED)


def test_resolve_uncached_hub_name_fast(clean_env):
    start = time.monotonic()
    with pytest.raises(PretrainedError) as info:
        TE.resolve_pretrained("bert-base-uncased")
    assert time.monotonic() - start < 5
    _assert_one_line_error(info, "BERT weights 'bert-base-uncased' are not available offline",
                           "not in the Hugging Face cache")


def test_resolve_directory_without_config_or_weights(clean_env, tiny_bert):
    empty = clean_env / "empty"
    empty.mkdir()
    with pytest.raises(PretrainedError) as info:
        TE.resolve_pretrained(str(empty))
    _assert_one_line_error(info, "no config.json")
    no_weights = clean_env / "no_weights"
    no_weights.mkdir()
    shutil.copy(Path(tiny_bert, "config.json"), no_weights)
    with pytest.raises(PretrainedError) as info:
        TE.resolve_pretrained(str(no_weights))
    _assert_one_line_error(info, "no model.safetensors")


def test_resolve_cached_hub_name(clean_env, tiny_bert):
    # a hub-cache layout made by hand: models--<org>--<name>/{refs/main, snapshots/<commit>/...}
    repo = clean_env / "hf_home" / "hub" / "models--fake-org--tiny-bert"
    commit = "0" * 40
    snapshot = repo / "snapshots" / commit
    shutil.copytree(tiny_bert, snapshot)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)
    assert TE.resolve_pretrained("fake-org/tiny-bert") == str(snapshot)


def test_check_tokenizer_without_vocab(tmp_path, tiny_bert):
    bare = tmp_path / "bare"
    bare.mkdir()
    shutil.copy(Path(tiny_bert, "config.json"), bare)
    with pytest.raises(PretrainedError) as info:
        TE.check_tokenizer(bare)
    _assert_one_line_error(info, str(bare), "vocab.txt is missing")


def test_check_tokenizer_catches_tiny_vocab(tmp_path):
    # a vocab.txt with only the 5 special tokens: loads, but is not a real vocabulary
    small = tmp_path / "small"
    small.mkdir()
    (small / "vocab.txt").write_text("[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\n")
    with pytest.raises(PretrainedError) as info:
        TE.check_tokenizer(small)
    _assert_one_line_error(info, "only 5 tokens")


def test_uncached_hub_name_is_downloaded_when_the_hub_is_allowed(clean_env, tiny_bert, monkeypatch):
    """No HF_HUB_OFFLINE: resolve_pretrained takes transformers' path, a download into the cache (here a
    stand-in for the hub client, no network)."""
    import huggingface_hub
    import huggingface_hub.constants as constants

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    calls = []

    def snapshot_download(repo_id, allow_patterns, cache_dir):
        calls.append((repo_id, cache_dir))
        assert "config.json" in allow_patterns and "vocab.txt" in allow_patterns
        target = Path(cache_dir) / "models--org--bert" / "snapshots" / ("1" * 40)
        shutil.copytree(tiny_bert, target)
        return str(target)

    monkeypatch.setattr(huggingface_hub, "snapshot_download", snapshot_download)
    resolved = TE.resolve_pretrained("org/bert")
    assert calls == [("org/bert", str(clean_env / "hf_home" / "hub"))]
    assert resolved == str(clean_env / "hf_home" / "hub" / "models--org--bert" / "snapshots" / ("1" * 40))

    def unreachable(**kwargs):
        raise OSError("connection refused")

    monkeypatch.setattr(huggingface_hub, "snapshot_download", unreachable)
    with pytest.raises(PretrainedError) as info:
        TE.resolve_pretrained("org/other-bert")
    _assert_one_line_error(info, "'org/other-bert' could not be downloaded", "connection refused", "--pretrained")


@pytest.mark.parametrize("variable", ["HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"])
def test_offline_environment_refuses_an_uncached_hub_name_without_trying(clean_env, monkeypatch, variable):
    import huggingface_hub
    import huggingface_hub.constants as constants

    for key in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv(variable, "1")
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)  # read at import: the variable counts now
    monkeypatch.setattr(huggingface_hub, "snapshot_download", lambda **kwargs: pytest.fail("tried the hub"))
    with pytest.raises(PretrainedError) as info:
        TE.resolve_pretrained("bert-base-uncased")
    _assert_one_line_error(info, "not in the Hugging Face cache", "HF_HUB_OFFLINE is set")


def test_special_ids_agree_with_synthetic():
    assert (TE.PAD_ID, TE.UNK_ID, TE.CLS_ID, TE.SEP_ID, TE.MASK_ID, TE.FIRST_WORD_ID) == (
        S.PAD_ID, S.UNK_ID, S.CLS_ID, S.SEP_ID, S.MASK_ID, S.FIRST_WORD_ID)
    assert len(TE.tiny_bert_vocab()) == S.VOCAB_SIZE

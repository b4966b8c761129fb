"""Helpers for the BERT text encoder: a tiny local BERT, path resolution, tokenizer checks.

MMSA's ``BertTextEncoder`` calls ``BertTokenizer.from_pretrained(pretrained)`` and
``BertModel.from_pretrained(pretrained)`` and hard-codes a hidden size of 768. ``pretrained`` is
resolved as transformers resolves it: a local directory, or a hub name found in the local cache,
or (when the environment allows the hub) a hub name downloaded into that cache. Nothing here
changes the process's hub settings: with ``HF_HUB_OFFLINE`` set by the user, an uncached hub name
is one error line instead of a download.

Traps found in transformers 5.23 / huggingface_hub 2.4 (checked on the installed versions):

- ``BertTokenizer`` is now the ``tokenizers``-backed class. ``BertTokenizer(vocab_file=path)``
  silently ignores the file (``vocab_file`` lands in ``**kwargs``) and returns a 5-token tokenizer
  whose ids are [PAD]=0, [UNK]=1, [CLS]=2, [SEP]=3, [MASK]=4, so every word maps to [UNK] and
  [CLS]/[SEP] get the wrong ids. The working spelling is ``BertTokenizer(vocab=path_or_dict)``.
- ``BertTokenizer.from_pretrained(dir)`` on a directory with neither ``vocab.txt`` nor
  ``tokenizer.json`` does not fail: it returns the same 5-token tokenizer. ``check_tokenizer``
  turns that into an error.
- ``save_pretrained`` of a tokenizer writes ``tokenizer.json`` and ``tokenizer_config.json`` but
  no ``vocab.txt``; ``write_tiny_bert`` writes ``vocab.txt`` itself (the classic BERT layout that
  older transformers and other tools expect).
- huggingface_hub reads ``HF_HUB_OFFLINE`` (and its cache location) once, at import; setting the
  environment variable afterwards changes nothing there. ``resolve_pretrained`` therefore reads
  both the environment and the imported flag at call time, and works out the cache directory
  from the environment.

transformers, huggingface_hub and the synthetic-data module are imported inside the functions:
the package imports this module at import time, which must stay cheap and must not pre-import
``dar_mmsa.data.synthetic`` (``python -m dar_mmsa.data.synthetic`` would then warn).
"""
from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

from dar_mmsa.errors import PretrainedError

ENV_PRETRAINED = "DAR_MMSA_PRETRAINED"
BERT_HIDDEN_SIZE = 768  # MMSA's models hard-code the BERT width
MIN_VOCAB = 100
WEIGHT_FILES = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin",
                "pytorch_model.bin.index.json")
# BERT-base-uncased's special ids, which dar_mmsa.data.synthetic uses too.
PAD_ID, UNK_ID, CLS_ID, SEP_ID, MASK_ID, FIRST_WORD_ID = 0, 100, 101, 102, 103, 104
_SPECIAL_TOKENS = {PAD_ID: "[PAD]", UNK_ID: "[UNK]", CLS_ID: "[CLS]", SEP_ID: "[SEP]", MASK_ID: "[MASK]"}
_FIX = (f"pass --pretrained /path/to/bert-base-uncased (a local directory with config.json, weights "
        f"and vocab.txt) or set {ENV_PRETRAINED}")
# what BertModel / BertTokenizer.from_pretrained read from a hub repository
HUB_FILES = ("config.json", "vocab.txt", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json",
             "model.safetensors", "model.safetensors.index.json", "model-*.safetensors")
_TRUE = {"1", "true", "yes", "on"}


def hub_offline() -> bool:
    """True when the user's environment forbids the hub (``HF_HUB_OFFLINE`` / ``TRANSFORMERS_OFFLINE``),
    read now, or when an imported ``huggingface_hub`` already decided so."""
    if any(os.environ.get(key, "").strip().lower() in _TRUE for key in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")):
        return True
    constants = sys.modules.get("huggingface_hub.constants")
    return bool(getattr(constants, "HF_HUB_OFFLINE", False))


def tiny_bert_vocab(vocab_size: int | None = None, language: str = "en") -> list[str]:
    """Tokens in id order: BERT's special ids (0, 100-103), [unusedN] at 1-99, synthetic words.

    ``vocab_size`` defaults to ``dar_mmsa.data.synthetic.VOCAB_SIZE``; ``language`` ``"cn"`` gives
    the Chinese characters of the synthetic CH-SIMS (bert-base-chinese has the same special ids).
    """
    from dar_mmsa.data.synthetic import VOCAB_SIZE, vocab_words

    vocab_size = VOCAB_SIZE if vocab_size is None else vocab_size
    if vocab_size < FIRST_WORD_ID:
        raise PretrainedError(f"tiny BERT vocab_size must be at least {FIRST_WORD_ID}, got {vocab_size}")
    tokens = [_SPECIAL_TOKENS.get(i, f"[unused{i - 1}]") for i in range(FIRST_WORD_ID)]
    words = vocab_words(language)
    tokens += words[:vocab_size - FIRST_WORD_ID]
    tokens += [f"[unused{i}]" for i in range(99, 99 + vocab_size - len(tokens))]
    return tokens


def _tiny_bert_config(num_layers, hidden_size, num_heads, intermediate_size, vocab_size):
    """The ``BertConfig`` of a tiny BERT (imports transformers)."""
    from transformers import BertConfig

    if hidden_size % num_heads:
        raise PretrainedError(f"tiny BERT: num_heads={num_heads} must divide hidden_size={hidden_size}")
    return BertConfig(vocab_size=vocab_size, hidden_size=hidden_size, num_hidden_layers=num_layers,
                      num_attention_heads=num_heads, intermediate_size=intermediate_size,
                      max_position_embeddings=512, type_vocab_size=2, pad_token_id=PAD_ID)


def _is_valid_tiny_bert(path: Path, expected: dict, vocab: list[str]) -> bool:
    """True if ``path`` already holds a complete tiny BERT with this config and vocabulary."""
    try:
        config = json.loads((path / "config.json").read_text())
        vocab_lines = (path / "vocab.txt").read_text().splitlines()
    except (OSError, ValueError):
        return False
    same_config = all(config.get(k) == v for k, v in expected.items())
    has_files = all((path / f).is_file() for f in ("model.safetensors", "tokenizer_config.json"))
    return same_config and has_files and vocab_lines == vocab


def _save_tiny_bert(target: Path, config, vocab: list[str], seed: int) -> None:
    """Write weights, vocab.txt and tokenizer files of a randomly initialised BERT to ``target``."""
    import torch
    from transformers import BertModel, BertTokenizer

    with torch.random.fork_rng(devices=[]):  # seed the init without touching the caller's RNG
        torch.manual_seed(seed)
        model = BertModel(config)
    model.save_pretrained(target, safe_serialization=True)
    vocab_path = target / "vocab.txt"
    vocab_path.write_text("\n".join(vocab) + "\n")
    # Positional on purpose: the first parameter is `vocab_file` in transformers 4 and `vocab` in 5
    # (a `vocab_file=` keyword is silently ignored by 5).
    tokenizer = BertTokenizer(str(vocab_path), do_lower_case=True, model_max_length=512)
    tokenizer.save_pretrained(target)


def write_tiny_bert(path, num_layers: int = 1, hidden_size: int = BERT_HIDDEN_SIZE,
                    num_heads: int = 12, intermediate_size: int = 128,
                    vocab_size: int | None = None, seed: int = 0, language: str = "en") -> Path:
    """Write a small random ``BertModel`` plus tokenizer to ``path`` (skipped if already there).

    The vocabulary (``vocab_size`` defaults to ``dar_mmsa.data.synthetic.VOCAB_SIZE``) matches
    the synthetic data of ``language`` (``"en"``: MOSI/MOSEI, ``"cn"``: CH-SIMS): its ``raw_text``
    tokenises to exactly the ids in ``text_bert``. Weights are random (seeded), so it is a
    plumbing stand-in, not a language model. Returns ``path``.
    """
    from dar_mmsa.data.synthetic import VOCAB_SIZE

    vocab_size = VOCAB_SIZE if vocab_size is None else vocab_size
    path = Path(path)
    config = _tiny_bert_config(num_layers, hidden_size, num_heads, intermediate_size, vocab_size)
    vocab = tiny_bert_vocab(vocab_size, language)
    expected = {"model_type": "bert", "hidden_size": hidden_size, "num_hidden_layers": num_layers,
                "num_attention_heads": num_heads, "intermediate_size": intermediate_size,
                "vocab_size": vocab_size}
    if _is_valid_tiny_bert(path, expected, vocab):
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
    try:
        _save_tiny_bert(staging, config, vocab, seed)
        if path.exists():
            for item in staging.iterdir():
                os.replace(item, path / item.name)
        else:
            try:
                os.replace(staging, path)
            except OSError:
                # another process created it meanwhile; theirs is as good as ours if complete
                if not _is_valid_tiny_bert(path, expected, vocab):
                    raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return path


def _hub_cache_dir() -> Path:
    """The Hugging Face hub cache directory as the current environment defines it."""
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"]).expanduser()
    if os.environ.get("HF_HOME"):
        return Path(os.environ["HF_HOME"]).expanduser() / "hub"
    cache = os.environ.get("XDG_CACHE_HOME") or os.path.join("~", ".cache")
    return Path(cache).expanduser() / "huggingface" / "hub"


def _cached_snapshot(name: str) -> Path | None:
    """The local snapshot directory of hub model ``name`` if its config.json is cached, else None."""
    from huggingface_hub import try_to_load_from_cache

    try:
        found = try_to_load_from_cache(name, "config.json", cache_dir=str(_hub_cache_dir()))
    except Exception:  # invalid repo ids raise validation errors: just "not cached"
        return None
    return Path(found).parent if isinstance(found, str) else None


def _unavailable(name: str, why: str = "") -> PretrainedError:
    """The one-line error for BERT weights that cannot be used."""
    detail = f" ({why})" if why else ""
    return PretrainedError(f"BERT weights '{name}' are not available offline{detail}: {_FIX}")


def _check_directory(directory: Path, name: str) -> str:
    """Return ``directory`` as a string if it has config.json and weights, else raise."""
    if not (directory / "config.json").is_file():
        raise _unavailable(name, f"{directory} has no config.json")
    if not any((directory / f).is_file() for f in WEIGHT_FILES):
        raise _unavailable(name, f"{directory} has no model.safetensors or pytorch_model.bin")
    return str(directory)


def download_pretrained(name: str) -> Path:
    """Download hub model ``name`` into the Hugging Face cache (as ``from_pretrained`` would) and return
    its snapshot directory; one line if the hub refuses or cannot be reached."""
    import huggingface_hub

    try:
        folder = huggingface_hub.snapshot_download(repo_id=name, allow_patterns=list(HUB_FILES),
                                                   cache_dir=str(_hub_cache_dir()))
    except Exception as err:  # network errors, unknown repos, gated repos: all end the run the same way
        message = " ".join(str(err).split())[:200]
        raise PretrainedError(f"BERT weights '{name}' could not be downloaded from the Hugging Face hub "
                              f"({type(err).__name__}: {message}): {_FIX}") from None
    return Path(folder)


def resolve_pretrained(pretrained: str | None = None) -> str:
    """A local directory holding the BERT named by ``pretrained`` (or ``$DAR_MMSA_PRETRAINED``).

    Accepts a local directory with config.json and weights, or a hub name: its cached snapshot, else
    a download into the cache unless the environment sets ``HF_HUB_OFFLINE`` (then one error line, at
    once). Raises ``PretrainedError`` (one line) otherwise.
    """
    name = str(pretrained) if pretrained else os.environ.get(ENV_PRETRAINED, "")
    if not name:
        raise PretrainedError(f"no BERT weights given: {_FIX}")
    local = Path(name).expanduser()
    if local.is_dir():
        return _check_directory(local, name)
    if local.exists():
        raise _unavailable(name, "it is a file, not a directory")
    if local.is_absolute() or name.startswith((".", "~")) or name.count("/") > 1:
        raise _unavailable(name, "no such directory")
    snapshot = _cached_snapshot(name)
    if snapshot is None:
        if hub_offline():
            raise _unavailable(name, "not a local directory and not in the Hugging Face cache, and "
                                     "HF_HUB_OFFLINE is set")
        snapshot = download_pretrained(name)
    return _check_directory(snapshot, name)


def check_tokenizer(path):
    """Load the BERT tokenizer at ``path`` and make sure it has a real vocabulary.

    Raises ``PretrainedError`` if a directory has no vocab.txt or the tokenizer has fewer than
    ``MIN_VOCAB`` tokens (the silent 5-token fallback of transformers 5). Returns the tokenizer.
    """
    from transformers import BertTokenizer

    directory = Path(path).expanduser()
    if directory.is_dir() and not (directory / "vocab.txt").is_file():
        raise PretrainedError(f"BERT tokenizer at {directory}: vocab.txt is missing (transformers 5 "
                              f"would silently use a 5-token vocabulary); copy the model's vocab.txt "
                              f"there or {_FIX}")
    try:
        tokenizer = BertTokenizer.from_pretrained(str(path), local_files_only=True)
    except (OSError, ValueError) as err:
        message = " ".join(str(err).split())
        raise PretrainedError(f"BERT tokenizer at {path} cannot be loaded ({message}): {_FIX}") from err
    if len(tokenizer) < MIN_VOCAB:
        raise PretrainedError(f"BERT tokenizer at {path} has only {len(tokenizer)} tokens: vocab.txt "
                              f"is missing or empty; {_FIX}")
    return tokenizer

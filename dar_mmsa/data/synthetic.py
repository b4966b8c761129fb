"""Synthetic MOSI/MOSEI/CH-SIMS-like feature pickles in MMSA's exact file format.

The files stand in for the real CMU-MOSI / CMU-MOSEI / CH-SIMS features when those are not at hand
(tests, smoke runs, CI). Every root written here carries a ``SYNTHETIC.json`` marker so that downstream
outputs can say their numbers come from synthetic data.

Layout: ``<root>/MOSI/Processed/{unaligned,aligned}_50.pkl`` (and ``MOSEI/...``), each a pickle
(protocol 4) of ``{"train"|"valid"|"test": {key: array}}`` with the keys MMSA reads:
``text_bert`` (N,3,50), ``text`` (N,50,300), ``audio`` (N,T_a,D_a), ``vision`` (N,T_v,D_v),
``audio_lengths`` / ``vision_lengths`` (unaligned files only, as in MMSA),
``regression_labels``, ``classification_labels``, ``id`` and ``raw_text``.
The aligned and unaligned files of a dataset hold the same samples (same ids, text and labels).

CH-SIMS (``sims``) follows MMSA's ``SIMS/Processed/unaligned_39.pkl``: no aligned file (MMSA ships
none), ``text_bert`` (N,3,39), ``text`` (N,39,768) (SIMS stores BERT features there), audio
(N,400,33), vision (N,55,709), labels on the 0.2 grid in [-1, 1], and the unimodal labels MMSA's
loader reads for SIMS, ``regression_labels_T/A/V`` (plus ``classification_labels_T/A/V``). Its
words are Chinese characters (ids ``FIRST_WORD_ID ..``, :func:`vocab_words` with ``"cn"``), written
without spaces as Chinese is, so BERT's tokenizer splits ``raw_text`` into one token per character.

Generative model, per sample:

1. Latents: a shared sentiment ``s`` and one specific part per modality ``t, a, v`` (independent
   Gaussians, standard deviations in ``LABEL_WEIGHTS``). The label is
   ``y = grid(shape(s + t + a + v + e + shift))``: ``e`` is irreducible noise, ``shape`` a
   signed power (exponent < 1) that makes the distribution bimodal with a thin centre, ``grid``
   rounds to 0.2 and clips to [-3, 3] (SIMS: the shaped sum divided by 3, clipped to [-1, 1]).
   ``classification_labels`` is 0/1/2 for y < 0, = 0, > 0. SIMS's unimodal label of modality m is
   ``grid(shape(s + m + e_m))`` with its own noise ``e_m``.
2. Text sees ``s + t``: it has 6..48 words (``[CLS] words [SEP]``, 8..50 BERT positions; SIMS: 6..37
   characters, 8..39 positions); each word is positive, negative or neutral with probabilities that
   depend on ``s + t`` through a logistic, then drawn Zipf-like inside its id range
   (``NEGATIVE_WORDS``, ``NEUTRAL_WORDS``, ``POSITIVE_WORDS``). ``text`` holds one 300-d vector per
   word (SIMS: 768-d; no [CLS]/[SEP], like GloVe features) from a fixed random table with a shared
   polarity direction.
3. Audio sees ``s`` and ``a``, vision sees ``s`` and ``v``, each through its own observation noise
   (audio and vision are weaker than text, as in the real data), plus per-sample nuisance factors.
   That latent vector goes through a fixed random matrix to a per-sample frame mean; frames add
   temporal noise (windows of a fixed Gaussian pool with random per-sample signs).
4. Lengths: unaligned audio/vision lengths grow with the word count (a shared random speaking
   rate plus a little independent jitter), capped at T; aligned files have one frame per BERT
   position, so their real length is the text length. Everything after the length is zero.

So each modality alone predicts y better than the mean, and the three together do better than any
one. All randomness comes from ``numpy.random.Generator`` streams keyed by (seed, dataset, split,
purpose): the same seed gives byte-identical arrays. Output is always finite (no ``-inf``).
"""
from __future__ import annotations

import argparse
import json
import os
import pickle
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dar_mmsa.errors import ConfigError

GENERATOR_VERSION = 1  # MOSI/MOSEI bytes are pinned by tests/test_memory.py; SIMS uses streams of its own

VOCAB_SIZE = 1000
PAD_ID, UNK_ID, CLS_ID, SEP_ID, MASK_ID = 0, 100, 101, 102, 103
FIRST_WORD_ID = 104
NEGATIVE_WORDS = range(FIRST_WORD_ID, 304)
NEUTRAL_WORDS = range(304, 800)
POSITIVE_WORDS = range(800, VOCAB_SIZE)

TEXT_LEN = 50  # MOSI's and MOSEI's; TEXT_LENS per dataset
GLOVE_DIM = 300
MIN_WORDS, MAX_WORDS = 6, TEXT_LEN - 2
MIN_SPLIT_SIZE = 8

SPLITS = ("train", "valid", "test")
DATASETS = ("mosi", "mosei", "sims")
SPLIT_SIZES = {"mosi": (1284, 229, 686), "mosei": (16326, 1871, 4659), "sims": (1368, 456, 457)}
FEATURE_DIMS = {"mosi": (5, 20), "mosei": (74, 35), "sims": (33, 709)}  # (audio D, vision D)
UNALIGNED_T = {"mosi": (375, 500), "mosei": (500, 500), "sims": (400, 55)}  # (audio T, vision T)
TEXT_LENS = {"mosi": TEXT_LEN, "mosei": TEXT_LEN, "sims": 39}  # BERT positions of text_bert
TEXT_DIMS = {"mosi": GLOVE_DIM, "mosei": GLOVE_DIM, "sims": 768}  # width of the `text` field
ALIGNMENTS = {"mosi": (False, True), "mosei": (False, True), "sims": (False,)}  # the files MMSA ships
LABEL_LIMITS = {"mosi": 3.0, "mosei": 3.0, "sims": 1.0}  # labels lie in [-limit, limit]
UNIMODAL_LABELS = {"sims": ("T", "A", "V")}  # regression_labels_<m> of MMSA's SIMS files
LANGUAGES = {"mosi": "en", "mosei": "en", "sims": "cn"}  # as MMSA's datasetCommonParams say
SHAPES = {
    (ds, aligned): {
        "audio": (TEXT_LENS[ds] if aligned else UNALIGNED_T[ds][0], FEATURE_DIMS[ds][0]),
        "vision": (TEXT_LENS[ds] if aligned else UNALIGNED_T[ds][1], FEATURE_DIMS[ds][1]),
    }
    for ds in DATASETS
    for aligned in ALIGNMENTS[ds]
}
DATASET_DIRS = {"mosi": "MOSI", "mosei": "MOSEI", "sims": "SIMS"}
MARKER_FILE = "SYNTHETIC.json"
FIRST_CHINESE_CHARACTER = 0x4E00  # the CJK Unified Ideographs block, which BERT splits per character

# Standard deviations of the label components (see the module docstring).
LABEL_WEIGHTS = {"shared": 0.65, "text": 0.45, "audio": 0.35, "vision": 0.30, "noise": 0.25}
LABEL_SHIFT = 0.12  # more positive than negative labels, as in MOSI
LABEL_GAIN, LABEL_POWER = 1.8, 0.85
# Observation noise on (shared, specific) latents, in units of their standard deviation.
OBSERVATION_NOISE = {"audio": (1.3, 1.0), "vision": (1.5, 1.1)}
NUISANCE_FACTORS = {"audio": 3, "vision": 4}
FRAME_NOISE = {"audio": 0.6, "vision": 0.5}
POLAR_WORD_RATE, WORD_SLOPE = 0.5, 3.0
POLARITY_STRENGTH = 1.0
NOISE_POOL_FRAMES = 1 << 14

_SYLLABLES = [c + v for c in "bdfgklmnprstvz" for v in "aeiou"]
# Sub-stream keys for the seeded generators.
_STREAM_TABLES, _STREAM_BASE, _STREAM_FRAMES, _STREAM_UNIMODAL = 1, 2, 3, 4
_MODALITY_KEY = {"audio": 1, "vision": 2}


def _rng(seed: int, *keys: int) -> np.random.Generator:
    """An independent generator for one (seed, keys...) stream."""
    return np.random.default_rng(np.random.SeedSequence([int(seed), *keys]))


def split_sizes(dataset: str, scale: float = 1.0) -> tuple[int, int, int]:
    """Train/valid/test sizes: the real ones times ``scale``, at least ``MIN_SPLIT_SIZE`` each."""
    return tuple(max(MIN_SPLIT_SIZE, int(round(n * scale))) for n in SPLIT_SIZES[dataset])


def file_name(dataset: str, aligned: bool) -> str:
    """MMSA's name of a dataset's pickle: ``unaligned_50.pkl``, ``aligned_50.pkl``, ``unaligned_39.pkl``."""
    return f"{'aligned' if aligned else 'unaligned'}_{TEXT_LENS[dataset]}.pkl"


def feature_path(root, dataset: str, aligned: bool) -> Path:
    """Where MMSA's config expects the dataset's pickle under ``root``."""
    return Path(root) / DATASET_DIRS[dataset] / "Processed" / file_name(dataset, bool(aligned))


def vocab_words(language: str = "en") -> list[str]:
    """The made-up words of ids ``FIRST_WORD_ID .. VOCAB_SIZE-1``, in id order: lower-case English-like
    words for ``"en"``, single Chinese characters for ``"cn"``."""
    if language == "cn":
        return [chr(FIRST_CHINESE_CHARACTER + k) for k in range(VOCAB_SIZE - FIRST_WORD_ID)]
    n = len(_SYLLABLES)
    words = []
    for k in range(VOCAB_SIZE - FIRST_WORD_ID):
        # Three syllables keep every word distinct (70**2 > 896) and unlike real English.
        words.append(_SYLLABLES[k % n] + _SYLLABLES[(k // n) % n] + _SYLLABLES[(7 * k + 3) % n])
    return words


def word_polarity() -> np.ndarray:
    """Polarity per token id (VOCAB_SIZE,): -1 negative words, +1 positive words, 0 otherwise."""
    polarity = np.zeros(VOCAB_SIZE, dtype=np.float32)
    polarity[NEGATIVE_WORDS.start:NEGATIVE_WORDS.stop] = -1.0
    polarity[POSITIVE_WORDS.start:POSITIVE_WORDS.stop] = 1.0
    return polarity


@dataclass(frozen=True)
class _Tables:
    """Fixed random tables of one (seed, dataset): word vectors, mixing matrices, noise pools."""

    embedding: np.ndarray  # (VOCAB_SIZE, GLOVE_DIM) float32, zero rows for special ids
    mixing: dict  # modality -> (K, D) float32
    bias: dict  # modality -> (D,) float32
    pool: dict  # modality -> (NOISE_POOL_FRAMES + T_max, D) float32


def _make_tables(dataset: str, seed: int) -> _Tables:
    """Draw the fixed tables of a dataset from the seed."""
    rng = _rng(seed, DATASETS.index(dataset), _STREAM_TABLES)
    embedding = rng.normal(0.0, 0.35, (VOCAB_SIZE, TEXT_DIMS[dataset]))
    direction = rng.normal(0.0, 0.35, TEXT_DIMS[dataset])
    embedding += POLARITY_STRENGTH * word_polarity()[:, None] * direction[None, :]
    embedding[:FIRST_WORD_ID] = 0.0
    mixing, bias, pool = {}, {}, {}
    t_max = max(UNALIGNED_T[dataset])
    for m, dim in zip(("audio", "vision"), FEATURE_DIMS[dataset]):
        k = 2 + NUISANCE_FACTORS[m]
        # Per-dimension scales vary like real acoustic/facial descriptors do, but stay O(1).
        scale = np.exp(rng.uniform(np.log(0.3), np.log(1.5), dim))
        mixing[m] = (rng.normal(0.0, 1.0, (k, dim)) / np.sqrt(k) * scale).astype(np.float32)
        bias[m] = rng.normal(0.0, 0.5, dim).astype(np.float32)
        pool[m] = (rng.standard_normal((NOISE_POOL_FRAMES + t_max, dim)) * scale).astype(np.float32)
    return _Tables(embedding.astype(np.float32), mixing, bias, pool)


@dataclass(frozen=True)
class _Base:
    """Everything about one split that both the aligned and the unaligned file share."""

    split: str
    latent: dict  # name -> (N,) float64, names as in LABEL_WEIGHTS
    n_words: np.ndarray  # (N,) int64
    tokens: np.ndarray  # (N, text length) int64: [CLS] words [SEP] 0...
    unaligned_lengths: dict  # modality -> (N,) int64
    labels: np.ndarray  # (N,) float32
    ids: np.ndarray  # (N,) str
    raw_text: np.ndarray  # (N,) str
    unimodal_labels: dict  # "T"/"A"/"V" -> (N,) float32 (SIMS only)

    @property
    def size(self) -> int:
        return len(self.labels)


def _latents(rng: np.random.Generator, n: int) -> dict:
    """Independent Gaussian label components, scaled by ``LABEL_WEIGHTS``."""
    return {name: rng.normal(0.0, sd, n) for name, sd in LABEL_WEIGHTS.items()}


def labels_from_latent(latent: dict, limit: float = 3.0) -> np.ndarray:
    """Regression labels on the 0.2 grid in [-limit, limit] from the summed latents (float32).

    The shaped sum is scaled by ``limit / 3`` first, so SIMS's [-1, 1] labels have MOSI's shape."""
    u = sum(latent.values()) + LABEL_SHIFT
    shaped = np.sign(u) * LABEL_GAIN * np.abs(u) ** LABEL_POWER
    if limit != 3.0:
        shaped = shaped * (limit / 3.0)
    return np.clip(np.round(shaped * 5.0) / 5.0, -limit, limit).astype(np.float32)


def _unimodal_labels(dataset: str, split: str, latent: dict, seed: int) -> dict:
    """SIMS's per-modality labels: the shared and that modality's latent plus its own noise (own stream)."""
    if dataset not in UNIMODAL_LABELS:
        return {}
    rng = _rng(seed, DATASETS.index(dataset), _STREAM_UNIMODAL, SPLITS.index(split))
    specific = {"T": "text", "A": "audio", "V": "vision"}
    return {m: labels_from_latent({"shared": latent["shared"], specific[m]: latent[specific[m]],
                                   "noise": rng.normal(0.0, LABEL_WEIGHTS["noise"], len(latent["shared"]))},
                                  LABEL_LIMITS[dataset])
            for m in UNIMODAL_LABELS[dataset]}


def classification_from_regression(labels: np.ndarray) -> np.ndarray:
    """MMSA's 3-class labels as float32: 0 negative, 1 neutral (exactly 0), 2 positive."""
    return (np.sign(labels) + 1.0).astype(np.float32)


def _word_counts(rng: np.random.Generator, n: int, max_words: int = MAX_WORDS) -> np.ndarray:
    """Words per utterance, log-normal around 11 and clipped to [MIN_WORDS, max_words]."""
    raw = np.exp(np.log(11.0) + 0.6 * rng.standard_normal(n))
    return np.clip(np.round(raw), MIN_WORDS, max_words).astype(np.int64)


def _draw_words(rng: np.random.Generator, text_latent: np.ndarray, n_words: np.ndarray,
                max_words: int = MAX_WORDS) -> np.ndarray:
    """Word ids (N, max_words), 0 after each sample's word count."""
    n = len(text_latent)
    h = text_latent / np.sqrt(LABEL_WEIGHTS["shared"] ** 2 + LABEL_WEIGHTS["text"] ** 2)
    p_pos = POLAR_WORD_RATE / (1.0 + np.exp(-WORD_SLOPE * h))
    p_neg = POLAR_WORD_RATE - p_pos
    u = rng.random((n, max_words))
    category = np.where(u < p_neg[:, None], 0, np.where(u < (p_neg + p_pos)[:, None], 2, 1))
    starts = np.array([r.start for r in (NEGATIVE_WORDS, NEUTRAL_WORDS, POSITIVE_WORDS)])
    sizes = np.array([len(r) for r in (NEGATIVE_WORDS, NEUTRAL_WORDS, POSITIVE_WORDS)])
    # Squaring a uniform gives a Zipf-like skew: a few words of each kind are frequent.
    rank = np.floor(rng.random((n, max_words)) ** 2 * sizes[category]).astype(np.int64)
    words = starts[category] + rank
    words[np.arange(max_words)[None, :] >= n_words[:, None]] = 0
    return words


def _tokens(words: np.ndarray, n_words: np.ndarray) -> np.ndarray:
    """BERT ids (N, max_words + 2): [CLS], the words, [SEP] at position n_words + 1, then 0."""
    n, max_words = words.shape
    tokens = np.zeros((n, max_words + 2), dtype=np.int64)
    tokens[:, 0] = CLS_ID
    tokens[:, 1:1 + max_words] = words
    tokens[np.arange(n), n_words + 1] = SEP_ID
    return tokens


def _unaligned_lengths(rng: np.random.Generator, dataset: str, n_words: np.ndarray) -> dict:
    """Audio/vision frame counts that grow with the word count, in [12, T]."""
    duration = n_words * np.exp(0.3 * rng.standard_normal(len(n_words)))
    lengths = {}
    for m, t_max in zip(("audio", "vision"), UNALIGNED_T[dataset]):
        frames = duration * (t_max / 36.0) * np.exp(0.1 * rng.standard_normal(len(n_words)))
        lengths[m] = np.clip(np.round(frames), 12, t_max).astype(np.int64)
    return lengths


def _make_base(dataset: str, split: str, n: int, seed: int) -> _Base:
    """Sample the shared part (latents, text, labels, lengths, ids) of one split."""
    rng = _rng(seed, DATASETS.index(dataset), _STREAM_BASE, SPLITS.index(split))
    latent = _latents(rng, n)
    max_words = TEXT_LENS[dataset] - 2
    n_words = _word_counts(rng, n, max_words)
    words = _draw_words(rng, latent["shared"] + latent["text"], n_words, max_words)
    language = LANGUAGES[dataset]
    vocab = np.array([""] * FIRST_WORD_ID + vocab_words(language), dtype=object)
    separator = "" if language == "cn" else " "
    raw_text = np.array([separator.join(vocab[row[:k]]) for row, k in zip(words, n_words)])
    ids = np.array([f"synthetic_{split}_{i // 10:05d}$_${i % 10 + 1}" for i in range(n)])
    return _Base(
        split=split,
        latent=latent,
        n_words=n_words,
        tokens=_tokens(words, n_words),
        unaligned_lengths=_unaligned_lengths(rng, dataset, n_words),
        labels=labels_from_latent(latent, LABEL_LIMITS[dataset]),
        ids=ids,
        raw_text=raw_text,
        unimodal_labels=_unimodal_labels(dataset, split, latent, seed),
    )


def _text_bert(base: _Base) -> np.ndarray:
    """(N, 3, text length) float32: ids, attention mask, segment ids (all 0)."""
    out = np.zeros((base.size, 3, base.tokens.shape[1]), dtype=np.float32)
    out[:, 0] = base.tokens
    out[:, 1] = base.tokens != PAD_ID
    return out


def _glove(base: _Base, tables: _Tables, out: np.ndarray) -> np.ndarray:
    """(N, text length, text width) float32 into ``out``: one vector per word, zero rows after the last word."""
    text_len = base.tokens.shape[1]
    words = np.zeros((base.size, text_len), dtype=np.int64)
    words[:, :text_len - 2] = base.tokens[:, 1:text_len - 1]
    words[words == SEP_ID] = PAD_ID
    return np.take(tables.embedding, words, axis=0, out=out)


def _frame_means(base: _Base, tables: _Tables, modality: str, rng: np.random.Generator) -> np.ndarray:
    """Per-sample frame mean (N, D): noisy (shared, specific) latents plus nuisance, mixed."""
    shared_noise, specific_noise = OBSERVATION_NOISE[modality]
    shared = base.latent["shared"] / LABEL_WEIGHTS["shared"]
    specific = base.latent[modality] / LABEL_WEIGHTS[modality]
    columns = [
        shared + shared_noise * rng.standard_normal(base.size),
        specific + specific_noise * rng.standard_normal(base.size),
    ]
    columns += list(rng.standard_normal((NUISANCE_FACTORS[modality], base.size)))
    z = np.stack(columns, axis=1).astype(np.float32)
    return z @ tables.mixing[modality] + tables.bias[modality]


def _frames(means: np.ndarray, lengths: np.ndarray, t_len: int, pool: np.ndarray,
            rng: np.random.Generator, out: np.ndarray) -> np.ndarray:
    """(N, t_len, D) float32 frames into ``out``: mean + pooled temporal noise, zero from ``lengths`` on."""
    n, dim = means.shape
    offsets = rng.integers(0, len(pool) - t_len, n)
    signs = rng.choice(np.array([-1.0, 1.0], dtype=np.float32), (n, 1, dim))
    # Copying contiguous pool windows is several times faster than drawing fresh normals.
    for i, start in enumerate(offsets):
        out[i] = pool[start:start + t_len]
    out *= signs
    out += means[:, None, :]
    out *= (np.arange(t_len)[None, :] < lengths[:, None])[:, :, None]
    return out


def _modality(base: _Base, tables: _Tables, dataset: str, aligned: bool, seed: int,
              modality: str, out: np.ndarray) -> np.ndarray:
    """Audio or vision array of one split for one file kind, into ``out``."""
    rng = _rng(seed, DATASETS.index(dataset), _STREAM_FRAMES, SPLITS.index(base.split),
               _MODALITY_KEY[modality], int(aligned))
    means = _frame_means(base, tables, modality, rng)
    t_len = SHAPES[(dataset, aligned)][modality][0]
    lengths = base.n_words + 2 if aligned else base.unaligned_lengths[modality]
    scale = FRAME_NOISE[modality]
    return _frames(means, lengths, t_len, tables.pool[modality] * scale, rng, out)


# Below this size an array is pickled as numpy does; ``bytes`` objects that small may be shared.
_MIN_BYTES_BACKED = 1 << 16


def _bytes_backed(shape, dtype) -> np.ndarray:
    """A zeroed, writable array whose memory is a new ``bytes`` object of its size.

    numpy's own unpickling builds arrays this way (``ndarray.__setstate__`` over the bytes it
    read). Its pickle state can then be that very object, where ``ndarray.__reduce__`` would
    first copy the array into new bytes: writing a file holds each array once, not twice. The
    bytes object is private to the array and never hashed, so filling it in place is safe.
    """
    dtype = np.dtype(dtype)
    raw = bytes(int(np.prod(shape)) * dtype.itemsize)
    arr = np.ndarray.__new__(np.ndarray, (0,), np.uint8)
    arr.__setstate__((1, tuple(shape), dtype, False, raw))
    return arr


class _Built:
    """An array built by ``fill(out)`` only when the pickler reaches it, pickled exactly as numpy
    pickles a C-contiguous array (protocol < 5) but from its own memory (see :func:`_bytes_backed`)."""

    def __init__(self, shape, fill, dtype=np.float32):
        self.shape, self.fill, self.dtype = tuple(shape), fill, np.dtype(dtype)

    def build(self) -> np.ndarray:
        return self.fill(np.empty(self.shape, self.dtype))

    def __reduce__(self):
        if int(np.prod(self.shape)) * self.dtype.itemsize < _MIN_BYTES_BACKED:
            return self.build().__reduce__()
        arr = _bytes_backed(self.shape, self.dtype)
        self.fill(arr)
        reconstruct, args, _ = np.empty(0, self.dtype).__reduce__()
        return reconstruct, args, (1, self.shape, self.dtype, False, arr.base)


def _split_items(base: _Base, tables: _Tables, dataset: str, aligned: bool, seed: int):
    """Yield (key, array or :class:`_Built`) of one split: the big arrays are built only when the
    pickler asks for them, and released once written."""
    yield "text_bert", _text_bert(base)
    yield "text", _Built((base.size, TEXT_LENS[dataset], TEXT_DIMS[dataset]), lambda out: _glove(base, tables, out))
    for m in ("audio", "vision"):
        yield m, _Built((base.size, *SHAPES[(dataset, aligned)][m]),
                        lambda out, m=m: _modality(base, tables, dataset, aligned, seed, m, out))
    if not aligned:
        yield "audio_lengths", base.unaligned_lengths["audio"].copy()
        yield "vision_lengths", base.unaligned_lengths["vision"].copy()
    yield "regression_labels", base.labels.copy()
    yield "classification_labels", classification_from_regression(base.labels)
    for m, labels in base.unimodal_labels.items():
        yield f"regression_labels_{m}", labels.copy()
        yield f"classification_labels_{m}", classification_from_regression(labels)
    yield "id", base.ids.copy()
    yield "raw_text", base.raw_text.copy()


class _LazyDict:
    """Pickles as a plain dict whose items come from an iterator, one at a time.

    With the pickler in fast mode (no memo) an item is released as soon as it has been written,
    so a file never needs all of its arrays in memory at once.
    """

    def __init__(self, items):
        self._items = items

    def __reduce__(self):
        return dict, (), None, None, iter(self._items)


def _dump_streaming(path: Path, obj) -> None:
    """Write ``obj`` (which may contain ``_LazyDict``) as a protocol-4 pickle, atomically."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            pickler = pickle.Pickler(f, protocol=4)
            pickler.fast = True  # no memo: nothing is shared between items, and a memo would pin them
            pickler.dump(obj)
        os.chmod(tmp, 0o644)  # mkstemp makes it private; a data file is meant to be shared
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _file_object(bases: list, tables: _Tables, dataset: str, aligned: bool, seed: int) -> _LazyDict:
    """The lazily built ``{split: {key: array}}`` of one pickle file."""
    return _LazyDict(
        (base.split, _LazyDict(_split_items(base, tables, dataset, aligned, seed))) for base in bases
    )


def read_marker(root) -> dict | None:
    """The parsed ``SYNTHETIC.json`` of ``root``, or None if there is none (or it is unreadable)."""
    try:
        marker = json.loads((Path(root) / MARKER_FILE).read_text())
    except (OSError, ValueError):
        return None
    return marker if isinstance(marker, dict) else None


def is_synthetic_root(root) -> bool:
    """True if ``root`` holds data written by this generator (its marker says synthetic)."""
    marker = read_marker(root)
    return bool(marker and marker.get("synthetic") is True)


def _write_marker(root: Path, datasets, scale: float, seed: int) -> None:
    """Record (and merge with any earlier record) what was generated under ``root``."""
    marker = read_marker(root) or {}
    per_dataset = marker.get("datasets") if isinstance(marker.get("datasets"), dict) else {}
    for ds in datasets:
        per_dataset[ds] = {"seed": seed, "scale": scale, "split_sizes": list(split_sizes(ds, scale))}
    marker.update(synthetic=True, seed=seed, scale=scale, generator_version=GENERATOR_VERSION,
                  datasets=per_dataset)
    (root / MARKER_FILE).write_text(json.dumps(marker, indent=2, sort_keys=True) + "\n")


def write_synthetic(root, datasets=DATASETS, scale: float = 1.0, seed: int = 0) -> dict:
    """Write aligned and unaligned synthetic pickles for ``datasets`` under ``root``.

    Returns ``{(dataset, aligned): Path}`` (SIMS: unaligned only, as MMSA ships it). Also writes
    ``<root>/SYNTHETIC.json``.
    """
    root = Path(root)
    unknown = [ds for ds in datasets if ds not in DATASETS]
    if unknown or not scale > 0:
        raise ConfigError(f"synthetic data: datasets must be among {DATASETS} and scale > 0, "
                          f"got datasets={list(datasets)} scale={scale}")
    root.mkdir(parents=True, exist_ok=True)
    written = {}
    for ds in datasets:
        tables = _make_tables(ds, seed)
        bases = [_make_base(ds, split, n, seed) for split, n in zip(SPLITS, split_sizes(ds, scale))]
        for aligned in ALIGNMENTS[ds]:
            path = feature_path(root, ds, aligned)
            _dump_streaming(path, _file_object(bases, tables, ds, aligned, seed))
            written[(ds, aligned)] = path
    _write_marker(root, datasets, scale, seed)
    return written


def main(argv=None) -> int:
    """CLI: ``python -m dar_mmsa.data.synthetic --root DIR [--datasets ...] [--scale] [--seed]``."""
    parser = argparse.ArgumentParser(
        prog="python -m dar_mmsa.data.synthetic",
        description="Write SYNTHETIC MOSI/MOSEI/SIMS feature pickles in MMSA's format (not real data).")
    parser.add_argument("--root", required=True, help="dataset root to write MOSI/, MOSEI/ and SIMS/ under")
    parser.add_argument("--datasets", nargs="+", default=list(DATASETS), choices=DATASETS)
    parser.add_argument("--scale", type=float, default=1.0, help="fraction of the real split sizes")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    written = write_synthetic(args.root, datasets=tuple(args.datasets), scale=args.scale, seed=args.seed)
    print(f"SYNTHETIC data (not CMU-MOSI/MOSEI or CH-SIMS), seed={args.seed} scale={args.scale}, "
          f"generator v{GENERATOR_VERSION}:")
    for (ds, aligned), path in written.items():
        sizes = "/".join(str(n) for n in split_sizes(ds, args.scale))
        kind = "aligned" if aligned else "unaligned"
        print(f"  {ds} {kind:9s} train/valid/test={sizes}  {path}")
    print(f"  marker: {Path(args.root) / MARKER_FILE}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

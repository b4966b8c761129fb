"""What docs/benchmark.md promises about the protocol holds (issue 9, items 4, 7, 8)."""
from pathlib import Path

import numpy as np
import torch

from dar_mmsa.data.corruption import corrupt_batch

DOC = (Path(__file__).resolve().parents[1] / "docs" / "benchmark.md").read_text()


def test_docs_state_the_aligned_rule_the_rng_difference_and_the_validator():
    assert "*Aligned files*" in DOC and "**text length**" in DOC
    assert "*Random numbers*" in DOC and "--masks lnln" in DOC
    assert "### Real feature files" in DOC and "**refused**" in DOC and "front-padded" in DOC
    assert "our models' stored `Loss` is the sample-weighted mean of their evaluation loss" in DOC
    assert "| `sample_weighted_loss` |" in DOC and "false: MMSA's mean of batch means" in DOC


def test_aligned_frames_count_as_real_up_to_the_text_length():
    text = torch.zeros(2, 3, 6)
    text[:, 0] = torch.arange(101, 107, dtype=torch.float32)
    text[0, 1, :3] = 1  # text length 3
    text[1, 1, :5] = 1  # text length 5
    audio, vision = torch.ones(2, 6, 2), torch.ones(2, 6, 1)
    _, audio_m, vision_m = corrupt_batch(text, audio, vision, rate=1.0, seed=0, sample_index=np.arange(2))
    for frames in (audio_m, vision_m):  # everything real is dropped at rate 1; the rest stays as it was
        assert frames[0, :3].abs().sum() == 0 and (frames[0, 3:] == 1).all()
        assert frames[1, :5].abs().sum() == 0 and (frames[1, 5:] == 1).all()

"""CENET (MMSA master port): shapes, parameter counts, CE injection, frozen embeddings, optimiser
groups, gradient clipping, a short training run and one MMSA_run."""
import pytest
import torch

from dar_mmsa.errors import ConfigError
from dar_mmsa.models.cenet import CENET, DEFAULTS
from dar_mmsa.training.cenet import CENETTrainer, cenet_parameter_groups
from model_inputs import inputs
from model_inputs import model_args as shared_model_args
from mmsa_run import run_through_mmsa

# spec §1.1, instantiated reference: CE, head, unused tag tables (BERT excluded)
SPEC_CE = {"mosi": 5_925_888, "mosei": 5_990_400}
SPEC_HEAD = 591_361
SPEC_TAG_TABLES = 10_752


def model_args(dataset, pretrained, **overrides):
    return shared_model_args(DEFAULTS, "cenet", dataset, pretrained, **overrides)


def non_bert_parameters(model):
    return sum(p.numel() for p in model.parameters()) - sum(p.numel() for p in model.bert.parameters())


@pytest.mark.parametrize("dataset", ["mosi", "mosei"])
def test_forward_returns_one_tuple_of_logits(dataset, tiny_bert):
    torch.manual_seed(0)
    model = CENET(model_args(dataset, tiny_bert)).eval()
    out = model(*inputs(dataset, batch=3))
    assert isinstance(out, tuple) and len(out) == 1
    assert out[0].shape == (3, 1) and torch.isfinite(out[0]).all()


@pytest.mark.parametrize("dataset", ["mosi", "mosei"])
def test_parameter_count_matches_reference(dataset, tiny_bert):
    reference = CENET(model_args(dataset, tiny_bert, unused_tag_embeddings=True))
    assert sum(p.numel() for p in reference.cross_modal_enhancement.parameters()) == SPEC_CE[dataset]
    assert sum(p.numel() for p in reference.head.parameters()) == SPEC_HEAD
    assert non_bert_parameters(reference) == SPEC_CE[dataset] + SPEC_HEAD + SPEC_TAG_TABLES
    default = CENET(model_args(dataset, tiny_bert))  # the unused tables are dropped by default
    assert non_bert_parameters(default) == SPEC_CE[dataset] + SPEC_HEAD


def test_injection_with_zero_enhancement_equals_bert(tmp_path):
    """With CE contributing nothing, our layer-by-layer pass must equal BertModel's own output."""
    from transformers import BertModel

    from dar_mmsa.text_encoder import write_tiny_bert

    bert_dir = str(write_tiny_bert(tmp_path / "bert2", num_layers=2, seed=3))
    torch.manual_seed(0)
    model = CENET(model_args("mosi", bert_dir)).eval()
    torch.nn.init.zeros_(model.cross_modal_enhancement.shift.weight)
    torch.nn.init.zeros_(model.cross_modal_enhancement.shift.bias)
    text, audio, vision = inputs("mosi")
    reference = BertModel.from_pretrained(bert_dir).eval()  # default attention implementation and mask
    expected = reference(input_ids=text[:, 0].long(), attention_mask=text[:, 1].long(),
                         token_type_ids=text[:, 2].long()).last_hidden_state
    with torch.no_grad():
        got = model.encode(text, audio, vision)
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)
    # ... and a non-zero CE shift does change the hidden states
    torch.nn.init.normal_(model.cross_modal_enhancement.shift.weight, std=0.02)
    with torch.no_grad():
        assert not torch.allclose(model.encode(text, audio, vision), expected, atol=1e-3)


def test_embeddings_frozen_and_ce_trained(tiny_bert):
    torch.manual_seed(0)
    model = CENET(model_args("mosi", tiny_bert)).train()
    model(*inputs("mosi"))[0].sum().backward()
    assert all(p.grad is None and not p.requires_grad for p in model.bert.embeddings.parameters())
    assert all(p.grad is not None for p in model.cross_modal_enhancement.parameters())
    assert all(p.grad is not None for p in model.bert.encoder.parameters())
    assert all(p.grad is not None for p in model.head.parameters())


def test_optimizer_groups_follow_parameter_names(tiny_bert):
    model = CENET(model_args("mosi", tiny_bert, unused_tag_embeddings=True))
    names = {id(p): n for n, p in model.named_parameters()}
    decayed, enhancement, not_decayed = cenet_parameter_groups(model, 1e-5, 1e-4)
    assert {names[id(p)] for p in enhancement["params"]} == {
        n for n, _ in model.named_parameters() if n.startswith("cross_modal_enhancement.")}
    assert any(n.endswith("bias") for n in (names[id(p)] for p in enhancement["params"]))
    assert all("bias" in names[id(p)] or "LayerNorm.weight" in names[id(p)] for p in not_decayed["params"])
    assert not any("bias" in names[id(p)] or "LayerNorm.weight" in names[id(p)] for p in decayed["params"])
    assert [g["weight_decay"] for g in (decayed, enhancement, not_decayed)] == [1e-4, 1e-4, 0.0]
    assert {g["lr"] for g in (decayed, enhancement, not_decayed)} == {1e-5}
    grouped = {id(p) for g in (decayed, enhancement, not_decayed) for p in g["params"]}
    trainable = {id(p) for p in model.parameters() if p.requires_grad}
    assert grouped == trainable  # frozen embeddings and tag tables are left out, nothing else
    assert not any(id(p) in grouped for p in model.bert.embeddings.parameters())

    (optimizer,) = CENETTrainer(model_args("mosi", tiny_bert)).build_optimizers(model)
    assert type(optimizer) is torch.optim.Adam  # coupled L2 decay, not AdamW
    assert optimizer.defaults["eps"] == 3e-08 and len(optimizer.param_groups) == 3


def test_train_step_uses_l1_and_clips_gradient_norm(tiny_bert):
    torch.manual_seed(0)
    args = model_args("mosi", tiny_bert)
    model = CENET(args).train()
    trainer = CENETTrainer(args)
    text, audio, vision = inputs("mosi")
    batch = {"text": text, "audio": audio, "vision": vision, "labels": torch.full((2, 1), 1000.0)}
    pred, loss = trainer.train_step(model, batch, trainer.build_optimizers(model))
    assert loss == pytest.approx((pred - 1000.0).abs().mean().item(), rel=1e-4)  # L1 on the pre-step output
    norm = torch.linalg.vector_norm(torch.stack([p.grad.norm() for p in model.parameters() if p.grad is not None]))
    assert norm.item() <= 2.0 + 1e-4


def test_bad_feature_dims_is_a_config_error(tiny_bert):
    with pytest.raises(ConfigError, match="feature_dims"):
        CENET(model_args("mosi", tiny_bert, feature_dims=[768, 5]))


def test_short_training_lowers_validation_loss(tiny_bert, small_mosi_root, tmp_path):
    from dar_mmsa.runner import build_args, build_model, build_trainer, load_data

    torch.manual_seed(0)
    args = build_args("cenet", "mosi", data_root=small_mosi_root, pretrained=tiny_bert, device="cpu", seed=1111,
                      save_path=tmp_path / "cenet.pth",
                      overrides={"max_epochs": 2, "batch_size": 8, "learning_rate": 1e-4})
    loaders = load_data(args)
    model, trainer = build_model(args), build_trainer(args)
    assert isinstance(trainer, CENETTrainer)
    history = trainer.do_train(model, loaders, return_epoch_results=True)
    valid = [epoch["Loss"] for epoch in history["valid"]]
    assert len(valid) == 2 and valid[1] < valid[0], valid
    assert (tmp_path / "cenet.pth").exists()


def test_mmsa_run(tiny_bert, small_mosi_root, tmp_path):
    rows = run_through_mmsa("cenet", small_mosi_root, tmp_path, dataset_params=dict(pretrained=tiny_bert, batch_size=8),
                            common=dict(max_epochs=1))
    assert (tmp_path / "models" / "cenet-mosi.pth").exists()
    assert list(rows["Model"]) == ["cenet"]

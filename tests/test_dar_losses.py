"""DAR's loss functions against references computed another way (loops, math, torch.distributions)."""
import itertools
import math

import pytest
import torch

from dar_mmsa.models import dar_losses as L
from dar_mmsa.models.dar import GaussianPosterior


def cosine(u, v):
    dot = sum(a * b for a, b in zip(u, v))
    return dot / (math.sqrt(sum(a * a for a in u)) * math.sqrt(sum(b * b for b in v)))


def nce_term(positive_sim, negative_sims, tau):
    """-log(e^{s+/tau} / (e^{s+/tau} + sum e^{s-/tau})) with plain floats."""
    num = math.exp(positive_sim / tau)
    return -math.log(num / (num + sum(math.exp(s / tau) for s in negative_sims)))


TEXT = [[1.0, 0.2, -0.5], [0.3, -1.0, 0.8], [-0.7, 0.4, 0.1]]
AUDIO = [[0.9, 0.1, -0.2], [-0.2, -0.8, 1.0], [0.5, 0.5, 0.5]]


def test_common_info_nce_equals_hand_computation_on_three_samples():
    tau = 0.5
    expected_terms = []
    for anchors, candidates in ((TEXT, AUDIO), (AUDIO, TEXT)):  # both directions of the pair
        for i in range(3):
            negatives = [cosine(anchors[i], candidates[j]) for j in range(3) if j != i]
            expected_terms.append(nce_term(cosine(anchors[i], candidates[i]), negatives, tau))
    expected = sum(expected_terms) / len(expected_terms)
    got = L.common_info_nce([torch.tensor(TEXT), torch.tensor(AUDIO)], tau)
    assert got.item() == pytest.approx(expected, rel=1e-5)


def test_independent_info_nce_equals_hand_computation_on_three_samples():
    tau = 0.3
    feats = {"text": TEXT, "audio": AUDIO}
    terms = []
    for m, other in (("text", "audio"), ("audio", "text")):
        for i in range(3):
            negatives = [cosine(feats[m][i], feats[other][k]) for k in range(3)]
            for j in range(3):
                if j != i:  # positives: the other samples of the same modality
                    terms.append(nce_term(cosine(feats[m][i], feats[m][j]), negatives, tau))
    expected = sum(terms) / len(terms)
    got = L.independent_info_nce([torch.tensor(TEXT), torch.tensor(AUDIO)], tau)
    assert got.item() == pytest.approx(expected, rel=1e-5)


def test_info_nce_drops_when_positives_are_made_identical():
    text = torch.tensor(TEXT)
    apart = L.common_info_nce([text, torch.tensor(AUDIO)], 0.1)
    identical = L.common_info_nce([text, text.clone()], 0.1)
    assert identical.item() < apart.item() - 0.5


def test_info_nce_without_positives_is_zero_and_differentiable():
    x = torch.randn(1, 4, requires_grad=True)
    loss = L.independent_info_nce([x, torch.randn(1, 4)], 0.1)  # batch of 1: no positive pair
    loss.backward()
    assert loss.item() == 0.0 and torch.isfinite(x.grad).all()


def test_club_estimate_equals_mean_over_all_pairs():
    torch.manual_seed(0)
    mean, log_var, target = torch.randn(4, 3, 2), torch.randn(4, 3, 2) * 0.3, torch.randn(4, 3, 2)

    def log_q(i, j):  # log q(y_j | x_i) without the normaliser (it cancels), summed over d, per step
        return (-(target[j] - mean[i]) ** 2 / (2 * log_var[i].exp())).sum(-1)

    brute = torch.stack([log_q(i, i) - torch.stack([log_q(i, j) for j in range(4)]).mean(0) for i in range(4)])
    assert L.club_estimate(mean, log_var, target).item() == pytest.approx(brute.mean().item(), rel=1e-5)


def test_gaussian_log_likelihood_matches_torch_distributions():
    torch.manual_seed(0)
    mean, log_var, target = torch.randn(2, 5, 3), torch.randn(2, 5, 3), torch.randn(2, 5, 3)
    reference = torch.distributions.Normal(mean, (0.5 * log_var).exp()).log_prob(target).sum(-1).mean()
    assert L.gaussian_log_likelihood(mean, log_var, target).item() == pytest.approx(reference.item(), rel=1e-5)


def fitted_club(dependent: bool, steps: int = 150) -> float:
    """Fit q_theta by maximum likelihood on fresh batches (as the trainer's q step does), then return
    the CLUB estimate on held-out samples. ``com`` = ``spec`` + small noise when ``dependent``."""
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(1)

    def sample(n):
        spec = torch.randn(n, 3, 4, generator=gen)
        noise = torch.randn(n, 3, 4, generator=gen)
        return spec, (spec + 0.1 * noise) if dependent else noise

    q = GaussianPosterior(4, 16)
    opt = torch.optim.Adam(q.parameters(), lr=1e-2)
    for _ in range(steps):
        spec, com = sample(64)
        opt.zero_grad()
        (-L.gaussian_log_likelihood(*q(spec), com)).backward()
        opt.step()
    spec, com = sample(512)
    with torch.no_grad():
        return L.club_estimate(*q(spec), com).item()


def test_club_is_near_zero_for_independent_and_positive_for_dependent_gaussians():
    assert abs(fitted_club(dependent=False)) < 0.2
    assert fitted_club(dependent=True) > 2.0


def test_restoration_and_reconstruction_losses_are_sums_of_mean_squared_errors():
    torch.manual_seed(0)
    a, b, c, d = (torch.randn(2, 3, 4) for _ in range(4))
    expected = ((a - b) ** 2).mean() + ((c - d) ** 2).mean()
    assert L.restoration_loss([a, c], [b, d]).item() == pytest.approx(expected.item(), rel=1e-6)
    assert L.reconstruction_loss([b, d], [a, c]).item() == pytest.approx(expected.item(), rel=1e-6)


def test_task_loss_is_l1():
    pred, labels = torch.tensor([[1.0], [-1.0]]), torch.tensor([[0.5], [1.0]])
    assert L.task_loss(pred, labels).item() == pytest.approx((0.5 + 2.0) / 2)


TERMS = {name: torch.tensor(value) for name, value in
         zip(L.TERMS, (0.9, 0.8, 2.5, 0.6, 1.3, 3.7))}
WEIGHTS = dict(alpha=0.1, beta=0.2, lam=0.7)


def test_total_loss_is_equation_24():
    t = {k: v.item() for k, v in TERMS.items()}
    expected = t["task"] + t["boot"] + 0.1 * (0.7 * (t["sim"] + t["diff"]) + t["re"]) + 0.2 * t["recon"]
    assert L.total_loss(TERMS, **WEIGHTS).item() == pytest.approx(expected, rel=1e-6)


@pytest.mark.parametrize("switches, removed", [
    ({"use_sim": False}, 0.1 * 0.7 * 2.5),
    ({"use_diff": False}, 0.1 * 0.7 * 0.6),
    ({"use_sim": False, "use_diff": False}, 0.1 * 0.7 * (2.5 + 0.6)),
    ({"use_recon": False}, 0.2 * 3.7),
    ({"use_boot": False}, 0.8),
])
def test_each_ablation_switch_removes_exactly_its_weighted_term(switches, removed):
    full = L.total_loss(TERMS, **WEIGHTS).item()
    assert full - L.total_loss(TERMS, **WEIGHTS, **switches).item() == pytest.approx(removed, rel=1e-5)


def test_time_average_uses_the_weights():
    x = torch.arange(6.0).view(1, 3, 2)
    weights = torch.tensor([[0.5, 0.5, 0.0]])
    assert L.time_average(x, weights).tolist() == [[1.0, 2.0]]


def test_common_info_nce_averages_the_three_modality_pairs():
    torch.manual_seed(0)
    feats = [torch.randn(5, 4) for _ in range(3)]
    pairs = [L.common_info_nce([feats[m], feats[n]], 0.2) for m, n in itertools.combinations(range(3), 2)]
    assert L.common_info_nce(feats, 0.2).item() == pytest.approx(torch.stack(pairs).mean().item(), rel=1e-6)


# ----------------------------------------------------------------------------- scale-free L_diff
def test_standardise_is_per_dimension_over_batch_and_time():
    x = torch.tensor([[[1.0, 10.0], [3.0, 10.0]], [[5.0, 10.0], [7.0, 10.0]]])  # (B=2, t=2, d=2)
    # dimension 0: mean 4, variance (9 + 1 + 1 + 9) / 4 = 5; dimension 1 is constant: only centred
    expected = torch.tensor([[[-3.0, 0.0], [-1.0, 0.0]], [[1.0, 0.0], [3.0, 0.0]]]) / torch.tensor([5 ** 0.5, 1.0])
    assert torch.allclose(L.standardise(x), expected, atol=1e-5)


def test_standardised_features_get_no_gradient_along_their_own_scale():
    torch.manual_seed(0)
    x = torch.randn(6, 3, 4, requires_grad=True)
    (L.standardise(x) * torch.randn(6, 3, 4)).sum().backward()
    # invariance to x -> c x means d/dc at c = 1, the gradient's projection on x, is zero
    assert abs(float((x.grad * x.detach()).sum())) < 1e-4
    assert float(x.grad.abs().sum()) > 1e-2


def test_club_input_choices_and_reductions():
    torch.manual_seed(0)
    x = torch.randn(5, 2, 3)
    assert L.club_input(x, "raw") is x
    assert torch.equal(L.club_input(x, "scale_free"), L.standardise(x))
    with pytest.raises(ValueError, match="scale_free"):
        L.club_input(x, "whitened")
    mean, log_var, target = torch.randn(5, 2, 3), torch.randn(5, 2, 3), torch.randn(5, 2, 3)
    for fn in (L.club_estimate, L.gaussian_log_likelihood):
        assert fn(mean, log_var, target, "mean").item() == pytest.approx(fn(mean, log_var, target).item() / 3, rel=1e-5)
    with pytest.raises(ValueError, match="sum"):
        L.club_estimate(mean, log_var, target, "max")


def test_feature_statistics_by_hand():
    com = torch.tensor([[[1.0, 0.0]], [[3.0, 2.0]]])   # (B=2, t=1, d=2): variances 1 and 1
    spec = torch.tensor([[[2.0, 5.0]], [[6.0, 1.0]]])  # variances 4 and 4; dim 0 moves with com, dim 1 against
    stats = L.feature_statistics(com, spec)
    assert stats == pytest.approx({"com_var": 1.0, "spec_var": 4.0, "com_spec_corr": 0.0}, abs=1e-6)
    assert L.feature_statistics(com, 2 * com + 1)["com_spec_corr"] == pytest.approx(1.0, abs=1e-6)


def dependent_pair(n, gen, independent=False):
    """(H~spec, H~com) of raw spread ~0.1 with H~com = 0.8 H~spec + noise (or unrelated)."""
    spec = torch.randn(n, 3, 4, generator=gen)
    noise = torch.randn(n, 3, 4, generator=gen)
    com = noise if independent else 0.8 * spec + 0.6 * noise
    return 0.1 * spec, 0.1 * com


def club_after_fitting(mode: str, steps: int = 300):
    """A q_theta fitted on fresh batches under ``mode``, and a function giving its CLUB estimate on
    held-out (spec, com) as seen under ``mode``."""
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(1)
    q = GaussianPosterior(4, 16)
    opt = torch.optim.Adam(q.parameters(), lr=1e-2)
    for _ in range(steps):
        spec, com = dependent_pair(64, gen)
        opt.zero_grad()
        (-L.gaussian_log_likelihood(*q(L.club_input(spec, mode)), L.club_input(com, mode))).backward()
        opt.step()

    def estimate(spec, com):
        with torch.no_grad():
            return L.club_estimate(*q(L.club_input(spec, mode)), L.club_input(com, mode)).item()

    return estimate, gen


def collapsed(x, factor):
    """``x`` pulled towards its batch mean: a constant when ``factor`` is 0."""
    mean = x.mean((0, 1), keepdim=True)
    return mean + factor * (x - mean)


def test_collapsing_h_spec_does_not_lower_the_scale_free_estimate_unless_dependence_falls():
    estimate, gen = club_after_fitting("scale_free")
    spec, com = dependent_pair(512, gen)
    before = estimate(spec, com)
    assert before > 1.0
    for factor in (0.1, 1e-3):  # shrinking towards a constant keeps every bit of the dependence
        assert estimate(collapsed(spec, factor), com) == pytest.approx(before, rel=0.01)
    assert abs(estimate(collapsed(spec, 0.0), com)) < 0.01  # a constant: the dependence really is gone
    unrelated_spec, _ = dependent_pair(512, gen, independent=True)
    assert estimate(unrelated_spec, com) < 0.2 * before  # independent features: the estimate falls


def test_the_raw_estimate_falls_when_h_spec_shrinks():
    estimate, gen = club_after_fitting("raw", steps=600)
    spec, com = dependent_pair(512, gen)
    before = estimate(spec, com)
    assert before > 0.05
    assert estimate(collapsed(spec, 1e-3), com) < 0.1 * before

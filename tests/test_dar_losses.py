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

"""The Ray backend on a two-node ``ray.cluster_utils.Cluster`` (one CPU each, on this machine), whose
nodes differ as cluster nodes do: each has its own Hugging Face cache (``HF_HUB_CACHE``) and its own
test hooks. A cached hub name and the config's default BERT pass the probe exactly on the nodes where
a unit resolves them, and units use their node's copy; a node whose feature file differs from the
planned one is refused before anything trains; without ``--ray-address`` a local Ray is started even
when ``RAY_ADDRESS`` points at a running cluster."""
import os
import shutil
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

from dar_mmsa.benchmark import run
from dar_mmsa.benchmark.store import ResultStore
from dar_mmsa.errors import ConfigError

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(Path(__file__).resolve().parent))
import run_benchmark  # noqa: E402
from padded_data import write_variant  # noqa: E402

HUB_NAME = "bert-base-uncased"  # the config's default BERT for MOSI
REVISION = "0123456789abcdef0123456789abcdef01234567"
GRID = dict(models=["misa"], datasets=["mosi"], seeds=[1111, 1112], rates=[0.0], device="cpu", progress=False,
            overrides={"max_epochs": 1, "batch_size": 8})


def write_hub_cache(hub: Path, bert: Path) -> Path:
    """A Hugging Face cache holding ``bert`` as the hub model ``HUB_NAME`` (revision ``main``)."""
    repo = hub / f"models--{HUB_NAME}"
    shutil.copytree(bert, repo / "snapshots" / REVISION)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(REVISION)
    return hub


@pytest.fixture(scope="module")
def two_nodes(tmp_path_factory, tiny_bert):
    ray = pytest.importorskip("ray")
    from ray.cluster_utils import Cluster

    from dar_mmsa.benchmark.executors.ray_backend import HOOKS_ENV

    base = tmp_path_factory.mktemp("cluster")
    hub_a, hub_b, hub_driver = write_hub_cache(base / "hub-a", Path(tiny_bert)), base / "hub-b", base / "hub-driver"
    hub_b.mkdir()
    write_hub_cache(hub_driver, Path(tiny_bert))
    hooks_a, hooks_b = base / "hooks-a", base / "hooks-b"
    hooks_a.mkdir()
    hooks_b.mkdir()
    saved = {k: os.environ.get(k) for k in ("HF_HUB_CACHE", "DAR_MMSA_PRETRAINED")}
    os.environ["HF_HUB_CACHE"] = str(hub_driver)  # the driver's own cache: never where a unit reads from
    os.environ.pop("DAR_MMSA_PRETRAINED", None)
    cluster = Cluster(initialize_head=True, head_node_args=dict(
        num_cpus=1, env_vars={"HF_HUB_CACHE": str(hub_a), HOOKS_ENV: str(hooks_a)}))
    node_b = cluster.add_node(num_cpus=1, env_vars={"HF_HUB_CACHE": str(hub_b), HOOKS_ENV: str(hooks_b)})
    ray.init(address=cluster.address, log_to_driver=False)
    try:
        ids = {n["NodeID"]: n for n in ray.nodes() if n["Alive"]}
        b_id = node_b.node_id
        yield SimpleNamespace(ray=ray, cluster=cluster, address=cluster.address, hub_a=hub_a, hub_b=hub_b,
                              hub_driver=hub_driver, hooks_b=hooks_b, node_a=next(i for i in ids if i != b_id),
                              node_b=b_id)
    finally:
        ray.shutdown()
        cluster.shutdown()
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _on(two_nodes, node, function, *args):
    """``function(*args)`` run on ``node`` (dar_mmsa's own functions: the workers import them by name)."""
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    remote = two_nodes.ray.remote(num_cpus=0, max_retries=0)(function)
    strategy = NodeAffinitySchedulingStrategy(node, soft=False)
    return two_nodes.ray.get(remote.options(scheduling_strategy=strategy).remote(*args), timeout=300)


def _unit_resolves(two_nodes, node, spec) -> bool:
    """What a unit does with the BERT on its node (``ray_node.node_bert``): True if it finds it there."""
    from dar_mmsa.benchmark.executors.ray_node import node_bert

    try:
        _on(two_nodes, node, node_bert, spec)
        return True
    except two_nodes.ray.exceptions.RayTaskError as exc:
        assert "PretrainedError" in str(exc), exc
        return False


def _probe_passes(two_nodes, node, spec, root) -> bool:
    from dar_mmsa.benchmark.execute import library_versions
    from dar_mmsa.benchmark.executors.ray_node import probe_task

    return not _on(two_nodes, node, probe_task, str(root), "t", {}, [spec], library_versions(), os.getcwd())["problems"]


def test_hub_names_pass_the_probe_exactly_where_a_unit_finds_them(two_nodes, small_mosi_root, tmp_path, capsys):
    from dar_mmsa import runner
    from dar_mmsa.benchmark.executors.ray_node import bert_spec

    default = runner.build_args("misa", "mosi", data_root=small_mosi_root)["pretrained"]  # no --pretrained
    assert default.startswith(str(two_nodes.hub_driver)) and bert_spec(default) == HUB_NAME
    nodes = (two_nodes.node_a, two_nodes.node_b)

    def verdicts():
        return [(_probe_passes(two_nodes, n, HUB_NAME, tmp_path), _unit_resolves(two_nodes, n, HUB_NAME))
                for n in nodes]

    assert verdicts() == [(True, True), (False, False)]  # node B's cache lacks it
    code = run_benchmark.main(["--no-progress", "--models", "misa", "--seeds", "1111", "--rates", "0.0",
                               "--data-root", str(small_mosi_root), "--pretrained", HUB_NAME, "--device", "cpu",
                               "--out", str(tmp_path), "--name", "refused", "--backend", "ray",
                               "--ray-address", two_nodes.address])
    err = [line for line in capsys.readouterr().err.splitlines() if not line.startswith("note: ")]
    assert code == 2 and len(err) == 1, err
    assert err[0].startswith("error: Ray node ") and f"cannot use the BERT '{HUB_NAME}' (BERT weights '{HUB_NAME}' " \
        "are not available offline" in err[0]
    assert ResultStore(tmp_path / "refused").trainings() == []

    write_hub_cache(two_nodes.hub_b, two_nodes.hub_a / f"models--{HUB_NAME}" / "snapshots" / REVISION)
    try:
        assert verdicts() == [(True, True), (True, True)]
        result = run(**GRID, data_root=small_mosi_root, out=tmp_path, name="default-bert", backend="ray",
                     ray_address=two_nodes.address, jobs=2)  # the config's default BERT, a hub name
        assert result.failures == [] and result.trained == 2
        used = [t["args"]["pretrained"] for t in ResultStore(tmp_path / "default-bert").trainings()]
        node_caches = (str(two_nodes.hub_a), str(two_nodes.hub_b))
        assert len(used) == 2 and all(p.startswith(node_caches) for p in used), used  # each node's own copy
        versions = ResultStore(tmp_path / "default-bert").trainings()[0]["versions"]
        assert versions["host"] and versions["feature_fingerprint"].startswith("sha256:")
    finally:
        shutil.rmtree(two_nodes.hub_b / f"models--{HUB_NAME}")


def test_a_node_whose_data_fingerprint_differs_is_refused(two_nodes, small_mosi_root, tiny_bert, tmp_path):
    other = write_variant(small_mosi_root, tmp_path / "node-b-copy", "over_length")
    hook = two_nodes.hooks_b / "node-data-root"
    hook.write_text(f"{small_mosi_root}\n{other}\n")
    try:
        with pytest.raises(ConfigError) as raised:
            run(**GRID, data_root=small_mosi_root, pretrained=tiny_bert, out=tmp_path, name="t", backend="ray",
                ray_address=two_nodes.address)
    finally:
        hook.unlink()
    message = " ".join(str(raised.value).split())
    path = Path(small_mosi_root) / "MOSI" / "Processed" / "unaligned_50.pkl"
    assert message.startswith("Ray node ") and f"has another {path} (fingerprint sha256:" in message
    assert "the driver planned with sha256:" in message and "\n" not in str(raised.value)
    assert ResultStore(tmp_path / "t").trainings() == []


def test_a_local_ray_starts_even_when_RAY_ADDRESS_points_elsewhere(two_nodes):
    code = ("import ray\n"
            "from dar_mmsa.benchmark.executors import BackendOptions\n"
            "from dar_mmsa.benchmark.executors.ray_backend import RayExecutor\n"
            "executor = RayExecutor(BackendOptions(backend='ray').checked())\n"
            "executor._init(ray)\n"
            "print(ray.get_runtime_context().gcs_address, len([n for n in ray.nodes() if n['Alive']]))\n"
            "executor.close()\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                         env=dict(os.environ, RAY_ADDRESS=two_nodes.address, OMP_NUM_THREADS="1"))
    assert out.returncode == 0, out.stderr[-3000:]
    address, nodes = out.stdout.split()[-2:]
    assert address != two_nodes.address and nodes == "1"  # its own one-node Ray, not the two-node cluster

"""Shared fixtures: synthetic weight files in the exact Keras layout, and the genuine partial VGG19."""
import os
from pathlib import Path

import pytest

# The test process's TensorFlow on one CPU thread, as every batch job runs (cpus_per_job 1): inline batches and
# figures (the tests monkeypatch batch.attempts.attempt) then run in this process, whatever test ran first. Set before
# TensorFlow is imported; tests that need another count start their own processes (test_threads.py).
os.environ["TF_NUM_INTRAOP_THREADS"] = "1"

from support import save_keras_h5, synthetic_weights  # noqa: E402

from legacy_nst.vgg import weights  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SHARED_PARTIAL = ROOT.parent / "shared" / "weights" / "vgg19_partial_block1-3.npz"


def pytest_addoption(parser):
    parser.addoption("--real-weights", default=os.environ.get("LEGACY_NST_REAL_WEIGHTS", str(SHARED_PARTIAL)),
                     help="path of vgg19_partial_block1-3.npz (genuine Keras VGG19 blocks 1-3)")


@pytest.fixture(scope="session")
def real_weights(request):
    """The genuine partial VGG19. Missing is a failure, never a skip: these tests are the real-feature check."""
    path = Path(request.config.getoption("--real-weights"))
    if not path.is_file():
        pytest.fail(f"{path} is missing: put vgg19_partial_block1-3.npz there or pass --real-weights PATH")
    return path


@pytest.fixture(scope="session")
def synthetic_dir(tmp_path_factory):
    """Full VGG16/VGG19 random weights saved under their canonical names (legacy Keras spelling)."""
    directory = tmp_path_factory.mktemp("synthetic_weights")
    for network in ("vgg16", "vgg19"):
        save_keras_h5(directory / weights.CANONICAL[network].filename, network, synthetic_weights(network, seed=1))
    return directory


@pytest.fixture(scope="session")
def vgg19_h5(synthetic_dir):
    return synthetic_dir / weights.CANONICAL["vgg19"].filename


@pytest.fixture(scope="session")
def vgg16_h5(synthetic_dir):
    return synthetic_dir / weights.CANONICAL["vgg16"].filename


@pytest.fixture
def weights_link(real_weights, tmp_path):
    """The genuine partial file seen from a scratch directory: a normalisation cache lands there, never in
    ../shared."""
    link = tmp_path / "weights" / real_weights.name
    link.parent.mkdir()
    link.symlink_to(real_weights.resolve())
    return link

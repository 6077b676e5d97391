"""Inception FID, KID and IS through torch-fidelity, tested with a tiny stand-in network of Inception's
interface: it is registered in torch-fidelity's registry and runs through the same library code as the
real Inception. No figure here is an Inception figure; nothing is downloaded."""

import json

import pytest
import torch
from conftest import TINY, assert_clean_error, assert_ok, invoke, quiet
from torch import nn

import zoo
from zoo.analysis import inception
from zoo.errors import ConfigError

torch_fidelity = pytest.importorskip("torch_fidelity")
from torch_fidelity.feature_extractor_base import FeatureExtractorBase  # noqa: E402
from torch_fidelity.registry import FEATURE_EXTRACTORS_REGISTRY, register_feature_extractor  # noqa: E402

STANDIN = "zoo-test-standin"


class StandIn(FeatureExtractorBase):
    """Inception's interface in miniature: uint8 [N,3,H,W] in, features and unbiased logits out, its
    weights from `feature_extractor_weights_path` (downloaded, as the real one, when that is None)."""

    def __init__(self, name, features_list, feature_extractor_weights_path=None, **kwargs):
        super().__init__(name, features_list)
        self.net, self.head = _layers()
        if feature_extractor_weights_path is None:
            state = torch.hub.load_state_dict_from_url("https://example.invalid/standin.pth")
        else:
            state = torch.load(feature_extractor_weights_path, weights_only=False)
        self.load_state_dict(state)

    def forward(self, x):
        assert x.dtype == torch.uint8 and x.dim() == 4 and x.shape[1] == 3, (x.dtype, x.shape)
        feat = self.net(nn.functional.interpolate(x.float() / 255, size=(16, 16), mode="bilinear"))
        out = {"feat": feat, "logits_unbiased": self.head(feat)}
        return tuple(out[f] for f in self.features_list)

    @staticmethod
    def get_provided_features_list():
        return "feat", "logits_unbiased"

    @staticmethod
    def get_default_feature_layer_for_metric(metric):
        return {"isc": "logits_unbiased"}.get(metric, "feat")

    @staticmethod
    def can_be_compiled():
        return False

    @staticmethod
    def get_dummy_input_for_compile():
        return torch.zeros(1, 3, 8, 8, dtype=torch.uint8)


def _layers():
    """Fixed random layers; the head's large weights make confident "classes", so IS is above 1."""
    torch.manual_seed(0)
    head = nn.Linear(128, 10)
    with torch.no_grad():
        head.weight.mul_(50)
    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.Tanh(), nn.AdaptiveAvgPool2d(4), nn.Flatten()), head


if STANDIN not in FEATURE_EXTRACTORS_REGISTRY:
    register_feature_extractor(STANDIN, StandIn)


@pytest.fixture(autouse=True)
def no_download(monkeypatch, tmp_path):
    """Any download fails the test; torch hub's cache is an empty folder."""
    def refuse(*args, **kwargs):
        raise AssertionError(f"a download was attempted: {args}")
    import torch_fidelity.feature_extractor_inceptionv3 as tf_inception
    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", refuse)
    monkeypatch.setattr(torch.hub, "download_url_to_file", refuse)
    monkeypatch.setattr(tf_inception, "load_state_dict_from_url", refuse)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch-home"))
    for var in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy"):
        monkeypatch.setenv(var, "http://127.0.0.1:9")


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    net, head = _layers()
    state = {**{f"net.{k}": v for k, v in net.state_dict().items()},
             **{f"head.{k}": v for k, v in head.state_dict().items()}}
    path = tmp_path_factory.mktemp("standin") / "standin.pth"
    torch.save(state, path)
    return path


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """A tiny feature classifier and a tiny VAE on digits (1 epoch each)."""
    root = tmp_path_factory.mktemp("inception-runs")
    feats = zoo.train("classifier", dataset="digits", epochs=1, out=root / "feat", log=quiet, progress=False,
                      **TINY).run_dir
    vae = zoo.train("vae", dataset="digits", epochs=1, out=root / "vae", log=quiet, progress=False, **TINY).run_dir
    return feats, vae


def test_standin_through_torch_fidelity_gives_fid_kid_and_is(weights):
    torch.manual_seed(1)
    images = torch.rand(200, 1, 28, 28)  # grey floats in [0, 1], as zoo's samples
    shifted = (images * 0.4 + 0.6).clamp(0, 1)
    same = inception.inception_quality(images, images, images, inception=weights, extractor=STANDIN)
    other = inception.inception_quality(images, shifted, inception=weights, extractor=STANDIN)
    assert abs(same["samples_vs_test"]["fid"]) < 1e-3 and abs(same["floor_test_vs_train"]["fid"]) < 1e-3
    assert other["samples_vs_test"]["fid"] > 0.01
    for r in (same["samples_vs_test"], other["samples_vs_test"]):
        assert {"fid", "kid", "kid_std", "kid_subsets", "kid_subset_size", "is", "is_std"} <= set(r)
        assert r["kid_subset_size"] == 100 and r["is"] >= 1
    assert other["samples_vs_test"]["kid"] > same["samples_vs_test"]["kid"]
    assert "floor_test_vs_train" not in other
    ramp = torch.linspace(0, 1, 200).view(-1, 1, 1, 1).expand(200, 3, 28, 28)  # RGB, from black to white
    varied = inception.inception_quality(ramp, ramp, inception=weights, extractor=STANDIN)["samples_vs_test"]
    assert varied["is"] > 1.005 and abs(varied["fid"]) < 1e-3  # images the network tells apart: IS above 1
    assert same["weights"] == str(weights) and "NOT the Inception" in same["note"]  # a stand-in claims nothing


def test_uint8_rgb_conversion():
    grey = torch.tensor([0.0, 0.5, 1.0]).view(3, 1, 1, 1)
    out = inception.to_uint8_rgb(grey)
    assert out.dtype == torch.uint8 and out.shape == (3, 3, 1, 1) and out[:, 0].flatten().tolist() == [0, 128, 255]
    with pytest.raises(ConfigError, match="grey or RGB"):
        inception.to_uint8_rgb(torch.zeros(2, 2, 4, 4))


def test_missing_weights_is_one_message_naming_the_file_and_where_it_was_looked_for(tmp_path):
    with pytest.raises(ConfigError) as e:
        inception.find_weights("auto")
    text = str(e.value)
    assert inception.WEIGHTS_FILE in text and str(tmp_path / "torch-home" / "hub" / "checkpoints") in text
    assert "--inception PATH" in text and inception.WEIGHTS_URL in text and "never downloads" in text
    with pytest.raises(ConfigError, match="not at .*nowhere"):
        inception.find_weights(tmp_path / "nowhere")
    cached = tmp_path / "torch-home" / "hub" / "checkpoints" / inception.WEIGHTS_FILE
    cached.parent.mkdir(parents=True)
    cached.write_bytes(b"x")
    assert inception.find_weights(True) == cached and inception.find_weights(cached.parent) == cached


def test_corrupt_or_foreign_weights_are_one_message(tmp_path, weights):
    bad = tmp_path / inception.WEIGHTS_FILE
    bad.write_bytes(b"not a checkpoint")
    images = torch.rand(40, 3, 8, 8)
    with pytest.raises(ConfigError, match="corrupt"):
        inception.inception_quality(images, images, inception=bad)
    # the stand-in's weights in torch-fidelity's real Inception: refused, and nothing downloaded
    with pytest.raises(ConfigError, match="do not fit inception-v3-compat"):
        inception.inception_quality(images, images, inception=weights)


def test_eval_without_weights_is_a_clean_error(runs):
    _, vae = runs
    result = invoke("eval", vae, "--fid", "--inception", "auto", "--no-progress")
    out = assert_clean_error(result, inception.WEIGHTS_FILE, "--inception PATH")
    assert out.count("Error") == 1


def test_eval_fid_inception_end_to_end_with_the_standin(runs, weights, monkeypatch):
    feats, vae = runs
    monkeypatch.setattr(inception, "EXTRACTOR", STANDIN)
    draws = []
    real_sample = zoo.runs.run.Run.sample
    monkeypatch.setattr(zoo.runs.run.Run, "sample", lambda self, n, **kw: draws.append(n) or real_sample(self, n, **kw))
    out = assert_ok(invoke("eval", vae, "--fid", "--features", feats, "--fid-n", "200", "--inception", weights,
                           "--no-progress"))
    assert draws == [200]  # the classifier-feature and the Inception figures share one draw of samples
    assert "classifier-feature FID/KID" in out and "precision" in out  # the existing lines are kept
    assert f"{STANDIN} weights {weights}" in out and "NOT the Inception" in out
    assert out.count("IS ") == 2 and "torch-fidelity" in out
    saved = json.loads((vae / "quality.json").read_text())
    inc = saved["inception"]
    assert inc["weights"] == str(weights) and inc["images"] == 200 and inc["feature_extractor"] == STANDIN
    assert inc["samples_vs_test"]["fid"] > inc["floor_test_vs_train"]["fid"] >= 0
    assert saved["samples_vs_test"]["fid"] > 0  # the classifier-feature figures beside them

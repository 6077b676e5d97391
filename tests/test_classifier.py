"""The classifier plugin and transfer from a trained encoder (`zoo finetune`)."""

import json
from pathlib import Path

import torch

import zoo
from zoo.errors import ConfigError
from conftest import TINY, assert_clean_error, assert_ok, invoke, is_png, quiet, weights


def test_finetune_freezes_the_encoder_and_reports(digits_run, tmp_path):
    out = assert_ok(invoke("finetune", digits_run, "--hidden", "20", "--epochs", "2", "--out", tmp_path / "head",
                           "--no-progress"))
    assert "test accuracy" in out and "trainable of" in out
    src, head = weights(Path(digits_run) / "model.safetensors"), weights(tmp_path / "head" / "model.safetensors")
    encoder_keys = [k for k in head if k.startswith("encoder.")]
    assert encoder_keys and all(torch.equal(head[k], src[k]) for k in encoder_keys)  # frozen: unchanged
    report = json.loads((tmp_path / "head" / "eval.json").read_text())["report"]
    assert report["parameters"]["trainable"] < report["parameters"]["total"]
    assert len(report["per_class_accuracy"]) == 10 and is_png(tmp_path / "head" / "confusion.png")
    assert sum(map(sum, report["confusion"])) == 359


def test_unfreeze_last_and_freeze_none_train_more(digits_run, tmp_path):
    src = weights(Path(digits_run) / "model.safetensors")
    zoo.api.finetune(digits_run, hidden=[20], unfreeze_last=1, epochs=1, out=tmp_path / "u1", log=quiet,
                     progress=False)
    u1 = weights(tmp_path / "u1" / "model.safetensors")
    changed = {k for k in u1 if k.startswith("encoder.") and not torch.equal(u1[k], src[k])}
    last_linear = max(k for k in u1 if k.startswith("encoder.") and k.endswith(".weight"))
    assert last_linear in changed and "encoder.0.weight" not in changed
    zoo.api.finetune(digits_run, hidden=[20], freeze="none", features="conv", epochs=1, out=tmp_path / "all",
                     log=quiet, progress=False)
    full = weights(tmp_path / "all" / "model.safetensors")
    assert not torch.equal(full["encoder.0.weight"], src["encoder.0.weight"])


def test_classifier_from_scratch_and_load(tmp_path):
    zoo.train("classifier", dataset="digits", epochs=2, out=tmp_path / "c", log=quiet, progress=False, **TINY)
    net = zoo.load(tmp_path / "c")
    logits = net.classify(torch.rand(3, 1, 28, 28))
    assert logits.shape == (3, 10)
    result = zoo.evaluate(tmp_path / "c")
    assert 0 <= result["metrics"]["accuracy"] <= 1


def test_finetune_needs_an_encoder(tmp_path):
    zoo.train("classifier", dataset="digits", epochs=1, out=tmp_path / "c", log=quiet, progress=False, **TINY)
    assert_clean_error(invoke("finetune", tmp_path / "nope"), "does not exist")


def test_finetune_model_must_be_one_that_trains_on_an_encoder(digits_run, tmp_path):
    assert_clean_error(invoke("finetune", digits_run, "--model", "convae", "--out", tmp_path / "h"),
                       "model 'convae' cannot be trained on top of another run", "These can: classifier")
    assert not (tmp_path / "h").exists()
    assert_ok(invoke("finetune", digits_run, "--model", "classifier", "--hidden", "8", "--epochs", "1",
                     "--out", tmp_path / "h", "--no-progress"))
    assert (tmp_path / "h" / "model.safetensors").is_file()


def test_finetune_takes_the_heads_sizes_as_a_list_one_int_or_the_clis_text_never_letter_by_letter(digits_run,
                                                                                                   tmp_path):
    for i, hidden in enumerate(([12, 6], 12, "12,6")):
        zoo.finetune(digits_run, hidden=hidden, epochs=1, out=tmp_path / str(i), log=quiet, progress=False)
        head = json.loads((tmp_path / str(i) / "config.json").read_text())["config"]["head"]
        assert head == ([12] if hidden == 12 else [12, 6])
    for bad in ("12,x", None, 1.5, [None]):
        try:
            zoo.finetune(digits_run, hidden=bad, epochs=1, out=tmp_path / "bad", log=quiet, progress=False)
        except ConfigError as e:
            assert "give the head's layer sizes" in e.message
        else:
            raise AssertionError(f"hidden={bad!r} was taken")
    assert not (tmp_path / "bad").exists()
    out = assert_clean_error(invoke("finetune", digits_run, "--hidden", "0", "--out", tmp_path / "zero"),
                             "hidden=[0] (--hidden): each layer of the head holds 1 to 65536 units")
    assert "head" not in out.split("(--hidden)")[0] and not (tmp_path / "zero").exists()  # the option's name

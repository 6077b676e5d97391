"""Steps that take a minute or more on a CPU say so as they start: a MAF or two-stage sampler's fit draws a bar of
its steps on a terminal, and a t-SNE of many codes says first that it takes a while (scikit-learn's draws nothing)."""
from __future__ import annotations

import numpy as np
import torch

from zoo.analysis import latent, metrics
from zoo.analysis.latent_samplers import get_sampler
from zoo.plugins import flow_samplers


def test_a_flow_samplers_fit_draws_a_bar_of_its_steps_on_a_terminal(monkeypatch, capsys):
    monkeypatch.setattr(metrics, "PROGRESS_AFTER_S", 0.0)  # drawn at once, not after two seconds
    # as on a terminal: the bar's own switch on, where a test's stderr is no terminal
    monkeypatch.setattr(flow_samplers, "progress_bar",
                        lambda total, what, unit: metrics.progress_bar(total, what, True, unit))
    sampler = get_sampler("maf")()
    sampler.steps, sampler.width = 40, 16
    sampler.fit(torch.randn(600, 3, generator=torch.Generator().manual_seed(0)), seed=0)
    said = capsys.readouterr().err
    assert "fitting the maf sampler" in said and "/40 [" in said and "step/s" in said, said


def test_a_tsne_of_many_codes_says_first_that_it_takes_a_while_and_pca_does_not(monkeypatch, capsys):
    monkeypatch.setattr(latent, "TSNE_MAX_ITER", 250)  # scikit-learn's least: the test's t-SNE is short
    monkeypatch.setattr(latent, "TSNE_SAY_FROM", 300)
    codes = np.random.default_rng(0).normal(size=(300, 4))
    latent.project(codes, "pca")
    assert capsys.readouterr().err == ""
    latent.project(codes, "tsne")
    assert "note: a t-SNE of 300 codes takes a while" in capsys.readouterr().err
    latent.project(codes[:299], "tsne")
    assert capsys.readouterr().err == ""

"""Space files within bounds: every number finite, and an expression language that cannot run for
ever (each expression evaluates at once or fails with a message naming its key and its text)."""

from __future__ import annotations

import json
import random
import time

import pytest
from conftest import SEARCH_FIXED, assert_clean_error, invoke, written

from zoo.errors import ConfigError
from zoo.search import expressions
from zoo.search import space as spacemod

optuna = pytest.importorskip("optuna")

FIXED = SEARCH_FIXED + "epochs = 1\n"


def draw(sp: spacemod.Space) -> dict:
    """One configuration drawn from the space, through Optuna (ConfigError where a draw fails)."""
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    values, helpers = sp.sample(study.ask())
    return {**values, **helpers}


# ------------------------------------------------------------------------------------------ non-finite numbers

@pytest.mark.parametrize("params, fragment", [
    ("lr = { low = nan, high = 1e-2 }", "lr.low is nan, not a finite number"),
    ("lr = { low = 1e-4, high = inf }", "lr.high is inf, not a finite number"),
    ("lr = { low = -inf, high = 1e-2 }", "lr.low is -inf, not a finite number"),
    ("lr = { low = 1e-4, high = 1e-2, step = nan }", "lr.step is nan, not a finite number"),
    ("lr = { low = 1e-4, high = \"1e308 * 10\" }", "lr.high: '1e308 * 10'"),
    ("lr = { low = 1e-4, high = \"float('nan')\" }", "lr.high: 'float('nan')'"),
    ("dropout = { low = -1.7e308, high = 1.7e308 }", "dropout: the range"),
    ("lr = { choices = [1e-3, nan] }", "lr: choice nan is nan, not a finite number"),
    ("lr = { value = inf }", "lr.value is inf, not a finite number"),
    ("hidden = { elements = [{ low = 8, high = inf }] }", "hidden[0].high is inf"),
])
def test_a_non_finite_number_in_a_space_is_refused_naming_its_key(tmp_path, params, fragment):
    space = written(tmp_path / "bad.toml", FIXED + "[params]\n" + params + "\n")
    assert_clean_error(invoke("search", "convae", "--space", space, "--out", tmp_path / "s"), fragment, code=2)
    assert not (tmp_path / "s").exists()  # refused before a study or a trial exists


def test_a_non_finite_objective_penalty_is_refused(tmp_path):
    space = written(tmp_path / "bad.toml", "[objective]\ntime_penalty = nan\n" + FIXED
                  + "[params]\nlr = { low = 1e-4, high = 1e-2 }\n")
    assert_clean_error(invoke("search", "convae", "--space", space, "--out", tmp_path / "s"),
                       "[objective] time_penalty is nan, not a finite number", code=2)


def test_a_non_finite_bound_computed_from_listable_drawn_keys_is_refused_naming_the_draw(tmp_path):
    space = written(tmp_path / "dep.toml", FIXED + "[params]\nscale = { low = 400, high = 410, helper = true }\n"
                                                 "lr = { low = 1e-4, high = \"10.0 ** scale\" }\n")
    assert_clean_error(invoke("search", "convae", "--space", space, "--out", tmp_path / "s"),
                       "lr.high: '10.0 ** scale' is beyond what a space expression may compute", "(when scale = 400)",
                       code=2)
    assert not (tmp_path / "s").exists()


def test_a_non_finite_bound_computed_from_a_float_draw_prunes_that_trial_and_the_summary_says_so(tmp_path):
    space = written(tmp_path / "dep.toml", "[search]\nstrategy = \"random\"\npruner = \"none\"\n" + FIXED
                  + "[params]\nscale = { low = 400.0, high = 410.0, helper = true }\n"
                    "lr = { low = 1e-4, high = \"10.0 ** scale\" }\n")
    out = invoke("search", "convae", "--space", space, "--out", tmp_path / "s", "--trials", "2")
    assert_clean_error(out, "no trial of the search completed, so there is no best.toml", code=1)
    assert f"search again with another --out (the study folder {tmp_path / 's'} keeps its settings" in out.output
    assert not (tmp_path / "s" / "best.toml").exists() and (tmp_path / "s" / "summary.json").is_file()
    assert json.loads((tmp_path / "s" / "summary.json").read_text())["best"] is None  # as run_search returns it
    pruned = [line for line in out.output.splitlines() if "pruned: invalid configuration:" in line]
    assert len(pruned) == 2 and all("lr.high: '10.0 ** scale' is beyond what a space expression may compute" in line
                                    for line in pruned)
    # once at the start, once in the summary
    assert out.output.count("note: the values or bounds of lr depend on drawn keys") == 2


# ------------------------------------------------------------------------------------------ bounded expressions

# One of each way an expression could compute for ever or fill the memory.
UNBOUNDED = [
    pytest.param("9 ** 9 ** 9", id="a power's digits"),
    pytest.param("2 ** 64", id="just past the integers"),
    pytest.param("10.0 ** 400", id="past a float"),
    pytest.param("[0] * 10**9", id="list repetition"),
    pytest.param("'ab' * 10**18", id="string repetition"),
    pytest.param("[[0] * 999] * 999", id="nested repetition"),
    pytest.param("[0] * 600 + [0] * 600", id="concatenation"),
    pytest.param("int(1e308)", id="a huge float made an integer"),
    pytest.param("round(5, -10**18)", id="round computing 10**(10**18)"),
    pytest.param("'%0999999999d' % 1", id="string formatting"),
    pytest.param("(-8) ** 0.5", id="a complex number"),
    pytest.param("-" * 200 + "1", id="deep nesting"),
    pytest.param("(" * 300 + "1" + ")" * 300, id="deep parentheses"),
    pytest.param("1 + " * 400 + "1", id="a very long text"),
]


@pytest.mark.parametrize("text", UNBOUNDED)
def test_an_unbounded_expression_fails_at_once_naming_key_and_text(text):
    start = time.perf_counter()
    with pytest.raises(ConfigError) as info:
        spacemod.parse_space({"params": {"channels": {"value": text}}}, source="s.toml")
    assert time.perf_counter() - start < 0.5
    message = info.value.message
    assert message.startswith("s.toml: channels.value: ")
    assert text[:40] in message  # the expression is shown (long ones shortened)


@pytest.mark.parametrize("text", ["[4] * n", "n ** n ** n", "round(n, -n)", "[n] * 2 ** 20", "int(1e300 * n)"])
def test_an_expression_over_a_drawn_key_is_bounded_too(text):
    sp = spacemod.parse_space({"params": {"n": {"low": 10**9, "high": 10**9 + 1, "helper": True},
                                          "channels": {"value": text}}}, source="s.toml")
    start = time.perf_counter()
    with pytest.raises(ConfigError, match="channels.value: .* is beyond what a space expression may compute"):
        draw(sp)
    assert time.perf_counter() - start < 0.5


def test_a_searched_list_length_is_bounded():
    with pytest.raises(ConfigError, match="length 1000000000 is more than a searched list may have"):
        spacemod.parse_space({"params": {"hidden": {"length": "10 ** 9", "element": {"low": 8, "high": 16}}}})
    sp = spacemod.parse_space({"params": {"n": {"low": 10**6, "high": 10**6, "helper": True},
                                          "hidden": {"length": "n", "element": {"low": 8, "high": 16}}}})
    with pytest.raises(ConfigError, match="hidden: length 1000000 is more than"):
        draw(sp)


def test_a_grid_too_large_to_list_is_refused():
    sp = spacemod.parse_space({"params": {k: {"low": 1, "high": 100} for k in ("a", "b", "c")}})
    with pytest.raises(ConfigError, match="the grid has more than 100,000 points"):
        sp.grid_size()


def test_bounded_expressions_still_compute_what_spaces_use():
    sp = spacemod.parse_space({"params": {
        "n": {"low": 3, "high": 3, "helper": True},
        "channels": {"value": "[4, 2 * 4, 3 ** 2]"},
        "hidden": {"value": "[max(512 // 2 ** (n + 1), 8)] * n + [int(round(2.5 * n))]"},
        "kernel": {"value": "[3] * n if n > 2 else [5]"},
        "latent_dim": {"value": "2 ** 63 // 2 ** 61 + len('ab')"},
    }})
    v = draw(sp)
    assert v["channels"] == [4, 8, 9] and v["hidden"] == [32, 32, 32, 8] and v["kernel"] == [3, 3, 3]
    assert v["latent_dim"] == 6


def _random_expression(rng: random.Random, depth: int) -> str:
    """An expression of the space language, built at random with large numbers and repetitions."""
    if depth == 0 or rng.random() < 0.2:
        return rng.choice(["n", "9", "2", "-3", "10 ** 9", "1e308", "0.5", "[0, 1]", "'ab'", "true", str(2 ** 62)])
    a, b = _random_expression(rng, depth - 1), _random_expression(rng, depth - 1)
    form = rng.choice(["({a} ** {b})", "({a} * {b})", "({a} + {b})", "({a} - {b})", "({a} // {b})", "({a} % {b})",
                       "({a} / {b})", "[{a}, {b}]", "({a} if {b} else {a})", "int({a})", "round({a}, {b})",
                       "max({a}, {b})", "abs({a})", "len({a})", "{a}[{b}]", "({a} < {b})", "-{a}", "float({a})"])
    return form.format(a=a, b=b)


def test_every_expression_of_the_language_evaluates_at_once_or_fails_with_a_message():
    rng = random.Random(0)
    start = time.perf_counter()
    outcomes = {"value": 0, "refused": 0}
    for _ in range(400):
        text = _random_expression(rng, rng.randint(1, 6))
        try:
            expr = expressions.Expr(text, "s.toml: k")
            value = expr({"n": 10 ** 9, "true": True})
        except ConfigError as e:
            assert e.message.startswith("s.toml: k: "), e.message
            outcomes["refused"] += 1
            continue
        expressions.checked(value)  # whatever it computed is within the language's bounds
        outcomes["value"] += 1
    assert time.perf_counter() - start < 5
    assert outcomes["value"] > 50 and outcomes["refused"] > 50  # the generator explores both sides


# ------------------------------------------------------------------------------------------ values a key takes

@pytest.mark.parametrize("params, message, hint", [
    pytest.param('latent_dim = { choices = [2, "3", true] }',
                 'latent_dim: the choices "3", true are not values that latent_dim takes',
                 "latent_dim takes an int, 1 .. 4096", id="mixed-type choices"),
    pytest.param('optimizer = { choices = ["adam", "rmsprop"] }',
                 'optimizer: the choice "rmsprop" is not a value that optimizer takes',
                 "optimizer takes a str, one of adam, adamw, sgd, adagrad", id="a choice outside the key's choices"),
    pytest.param("kernel = { elements = [{ choices = [3, 0] }, { low = 3, high = 5 }] }",
                 "kernel[0]: the choice 0 is not a value that kernel takes", "kernel takes a list[int], 1 .. 15",
                 id="an element's choice out of range"),
    pytest.param("latent_dim = { low = 0, high = 4 }", "latent_dim: low = 0 is outside the range of latent_dim",
                 "Give bounds within that range", id="a bound below the range"),
    pytest.param("lr = { low = 1e-4, high = 20.0 }", "lr: high = 20.0 is outside the range of lr",
                 "lr takes a float, 0 .. 10", id="a bound above the range"),
    pytest.param('latent_dim = { low = 2, high = "2 * 3000" }', "latent_dim: high = 6000 is outside the range",
                 "latent_dim takes an int, 1 .. 4096", id="a constant expression"),
    pytest.param("latent_dim = { low = 2.0, high = 6.0 }",
                 "latent_dim: a float range draws fractions, and latent_dim takes whole numbers",
                 "Give integer bounds", id="float bounds for an int key"),
    pytest.param("optimizer = { low = 1, high = 2 }", "optimizer: a range draws numbers, and optimizer takes a str",
                 "Search it with `choices`", id="a range for a text key"),
    pytest.param("latent_dim = { length = 2, element = { low = 1, high = 2 } }",
                 "latent_dim: a searched list, and latent_dim is not a list", "latent_dim takes an int",
                 id="a list for a scalar key"),
    pytest.param('n = { low = 1, high = 2, helper = true }\nmomentum = { low = 0.0, high = "n * 0.6" }',
                 "momentum: high = 'n * 0.6' (1.2 when n = 2) is outside the range of momentum",
                 "for every draw of the keys they read", id="a bound over a drawn key"),
    pytest.param('n = { low = 1, high = 3, helper = true }\n'
                 'decoder_hidden = { length = "n", element = { low = "n - i - 1", high = 64 } }',
                 "decoder_hidden[i]: low = 'n - i - 1' (0 when n = 1, i = 0)", "decoder_hidden takes a list[int], 1 ..",
                 id="an element's bound over its index"),
    pytest.param('k = { choices = [3, 5], helper = true }\nkernel = { value = "[k, k * 4]" }',
                 "kernel: value = '[k, k * 4]' ([5, 20] when k = 5) is not one that kernel takes",
                 "kernel takes a list[int], 1 .. 15", id="a computed value"),
    pytest.param('p = { choices = [false, true], helper = true }\nprune_every = { low = 1, high = 2, when = "p" }\n'
                 'prune_encoder_linear = { low = 0.0, high = "1.0 if p else 0.5", when = "p" }',
                 "prune_encoder_linear: high = '1.0 if p else 0.5' (1.0 when p = true)", "0 .. 0.99",
                 id="a conditional key, in the draws that draw it"),
])
def test_a_value_its_config_key_cannot_take_stops_the_search_before_the_first_trial(tmp_path, params, message, hint):
    space = written(tmp_path / "bad.toml", FIXED + "[params]\n" + params + "\n")
    assert_clean_error(invoke("search", "convae", "--space", space, "--out", tmp_path / "s"),
                       f"{space}: {message}", hint, code=2)
    assert not (tmp_path / "s").exists()  # no study, no trial


@pytest.mark.parametrize("params", [
    "kernel = { choices = [3, 5] }",                                              # one value: every layer
    "lr = { choices = [1, 0.5] }",                                                # an int for a float key
    'n = { low = 1, high = 2, helper = true }\nmomentum = { low = 0.0, high = "n * 0.5" }',
    'n = { low = 1, high = 3, helper = true }\n'
    'decoder_hidden = { length = "n", element = { low = "n - i", high = 64 } }',  # i < n in every draw
    'p = { choices = [false, true], helper = true }\nprune_every = { low = 1, high = 2, when = "p" }\n'
    'prune_encoder_linear = { low = 0.0, high = "0.5 if p else 5.0", when = "p" }',  # 5.0 is never drawn
])
def test_values_every_draw_of_which_fits_the_key_are_accepted_without_a_note(tmp_path, params):
    from zoo.search import prepare

    settings, _ = prepare("convae", written(tmp_path / "ok.toml", FIXED + "[params]\n" + params + "\n"),
                          out=tmp_path / "s")
    assert settings.notes == []

"""Files written as a pair (noise_sweep.json and .png; a latent scatter's PNG and CSV) are written under their
folder's results lock: two commands ending together each write both, in turn, never one's file beside the other's."""
from __future__ import annotations

import threading

import zoo
from zoo.runs.lock import results_lock


def _waits_for_the_lock(folder, call, written) -> None:
    """`call` (in a thread) writes nothing of `written` while another holder has `folder`'s results lock, and
    writes it once the lock is let go."""
    errors: list[BaseException] = []

    def work():
        try:
            call()
        except BaseException as e:  # noqa: BLE001 - re-raised in the test's thread
            errors.append(e)

    with results_lock(folder):
        worker = threading.Thread(target=work)
        worker.start()
        worker.join(timeout=8)  # its computing done, it now waits at the lock
        assert worker.is_alive() and not errors, errors
        assert not any(p.exists() for p in written)
    worker.join(timeout=120)
    assert not errors, errors
    assert all(p.exists() for p in written)


def test_a_noise_sweep_writes_its_json_and_png_under_the_runs_results_lock(run_copy):
    out = zoo.load(run_copy).output_dir
    out.mkdir(parents=True, exist_ok=True)
    _waits_for_the_lock(out, lambda: zoo.api.noise_sweep(run_copy, noise="gaussian:0.3", factors=(1,)),
                        [out / "noise_sweep.json", out / "noise_sweep.png"])


def test_a_latent_scatter_writes_its_png_and_csv_under_their_folders_results_lock(digits_run, tmp_path):
    _waits_for_the_lock(tmp_path, lambda: zoo.latent_scatter(digits_run, n=200, out=tmp_path / "codes.png"),
                        [tmp_path / "codes.png", tmp_path / "codes.csv"])


def test_a_sample_quality_measurement_reads_and_writes_quality_json_under_the_runs_results_lock(tmp_path):
    """Its "keep the fuller one" is decided under the lock: two measurements ending together each see the other's."""
    from conftest import TINY, quiet

    runs = {name: zoo.train(model, dataset="digits", epochs=1, out=tmp_path / name, log=quiet, progress=False,
                            **TINY).run_dir for name, model in {"feat": "classifier", "vae": "vae"}.items()}
    vae = runs["vae"]
    _waits_for_the_lock(vae, lambda: zoo.api.sample_quality(vae, features=str(runs["feat"]), n=100),
                        [vae / "quality.json"])

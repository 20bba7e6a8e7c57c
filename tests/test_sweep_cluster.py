"""Sweeps on HPC clusters through dask-jobqueue: the example [cluster] table builds a real
SLURMCluster whose job script is rendered and checked (no SLURM needed)."""

from __future__ import annotations

from pathlib import Path

import pytest

from bioplaus.spec import SpecError
from bioplaus.sweep import cluster_table, load_sweep
from bioplaus.sweep_workers import check_cluster, jobqueue_cluster

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "protocols" / "sweeps" / "cluster_slurm.toml"


def test_example_slurm_table_builds_a_cluster_and_job_script(tmp_path, monkeypatch):
    pytest.importorskip("dask_jobqueue", reason="dask-jobqueue not installed (bioplaus[cluster])")
    monkeypatch.chdir(tmp_path)  # its log_directory is created relative to here
    sw = load_sweep(EXAMPLE)
    assert sw.cluster["kind"] == "slurm" and len(sw.points) == 102
    cluster, scaling = jobqueue_cluster(sw.cluster)
    try:
        assert type(cluster).__name__ == "SLURMCluster" and scaling == {"jobs": 34}
        script = cluster.job_script()
        lines = script.splitlines()
        assert lines[0].startswith("#!")
        for directive in (
            "#SBATCH -p normal",
            "#SBATCH -A mylab",
            "#SBATCH --cpus-per-task=2",  # job_cpu: the points' train.threads
            "#SBATCH --mem=4G",
            "#SBATCH -t 04:00:00",
        ):
            assert directive in lines, (directive, script)
        assert "source $HOME/bioplaus/.venv/bin/activate" in lines
        worker = next(ln for ln in lines if "dask_worker" in ln or "dask worker" in ln)
        assert "--nthreads 1" in worker  # one point at a time per worker
        assert "--nanny" in worker and "--lifetime 3h50m" in worker
        assert cluster.scheduler_address in worker
        # the scheduler bioplaus starts fails a lost worker's point at once; bioplaus re-runs
        assert cluster.scheduler.allowed_failures == 0
    finally:
        cluster.close()
    assert (tmp_path / "dask-logs").is_dir()


def test_command_line_overrides_and_other_kinds(tmp_path, monkeypatch):
    pytest.importorskip("dask_jobqueue", reason="dask-jobqueue not installed (bioplaus[cluster])")
    monkeypatch.chdir(tmp_path)
    sw = load_sweep(EXAMPLE)
    table = cluster_table(
        sw,
        kind="pbs",
        jobs=3,
        sets=["memory=8GB", "walltime='01:00:00'", "log_directory='pbs-logs'"],
    )
    assert table["kind"] == "pbs" and table["jobs"] == 3 and table["memory"] == "8GB"
    table.pop("account")
    table.pop("job_cpu")  # a SLURM-only option
    table["resource_spec"] = "select=1:ncpus=2"
    cluster, scaling = jobqueue_cluster(table)
    try:
        script = cluster.job_script()
        assert "#PBS -q normal" in script and "#PBS -l walltime=01:00:00" in script
        assert scaling == {"jobs": 3}
    finally:
        cluster.close()


@pytest.mark.parametrize(
    ("table", "needle"),
    [
        ({"kind": "slurmm"}, "cluster.kind: expected one of"),
        ({"kind": "slurm", "jobs": -1}, "cluster.jobs: expected an integer >= 0"),
        ({"kind": "slurm", "jobs": 2, "maximum_jobs": 4}, "cluster.jobs: give jobs or"),
    ],
)
def test_bad_cluster_table_is_one_line(table, needle):
    with pytest.raises(SpecError, match=needle):
        check_cluster(table)


def test_unknown_cluster_option_names_the_key():
    pytest.importorskip("dask_jobqueue", reason="dask-jobqueue not installed (bioplaus[cluster])")
    with pytest.raises(
        SpecError, match=r"cluster.cpus: not an option of dask_jobqueue.SLURMCluster"
    ):
        jobqueue_cluster({"kind": "slurm", "cpus": 2})


def test_bad_cluster_in_sweep_file_nothing_written(tmp_path):
    from bioplaus.cli import main

    text = EXAMPLE.read_text().replace('kind = "slurm"', 'kind = "torque"')
    text = text.replace(
        'protocol = "../mackey_glass_anp.toml"',
        f'protocol = "{ROOT / "protocols" / "mackey_glass_anp.toml"}"',
    )
    f = tmp_path / "s.toml"
    f.write_text(text)
    assert main(["sweep", str(f), "--out", str(tmp_path / "out"), "--quiet"]) == 2
    assert not (tmp_path / "out").exists()


def test_cluster_flags_checked_before_anything(tmp_path, capsys):
    from bioplaus.cli import main

    out = tmp_path / "out"
    assert main(["sweep", str(EXAMPLE), "--cluster-set", "jobs=-2", "--out", str(out)]) == 2
    assert "--cluster.jobs: expected an integer >= 0" in capsys.readouterr().err
    small = ROOT / "protocols" / "sweeps" / "mackey_glass_noise_small.toml"
    assert main(["sweep", str(small), "--jobs", "3", "--out", str(out)]) == 2
    assert "no [cluster] kind" in capsys.readouterr().err
    assert not out.exists()

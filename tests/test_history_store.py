"""The history's store on SQLite and on a real PostgreSQL server: what goes in comes out, a run
added twice adds nothing, and bad databases are refused with one line and exit 2."""

from __future__ import annotations

import json
import threading

import numpy as np
import pytest

from bench.cli import main
from bench.history.store import HistoryError, Store
from tests.fixtures.gate_runs import lognormal
from tests.history_helpers import commit, run_at


def _count(url: str, table: str) -> int:
    from sqlalchemy import create_engine, text

    engine = create_engine(url)
    with engine.connect() as conn:
        n = conn.execute(text(f"SELECT COUNT(*) FROM {table}")).scalar_one()
    engine.dispose()
    return int(n)


def test_points_written_and_read_back(history_db, tmp_path, capsys):
    runs = [run_at(tmp_path / "res", i, 0.01 * (1 + 0.05 * i)) for i in range(3)]
    assert main(["history", "add", *map(str, runs), "--db", history_db, "--branch", "main"]) == 0
    assert "3 run(s) added" in capsys.readouterr().out

    df = __import__("bench.history").history.load(history_db, metric="step_time")
    # 3 runs x 2 cells; in commit order; the median is the samples' own median
    assert len(df) == 6
    assert list(dict.fromkeys(df["commit"])) == [commit(0), commit(1), commit(2)]
    train = df[df["workload"] == "train"]
    expected = [float(np.median(lognormal(i, 40, 0.01 * (1 + 0.05 * i)))) for i in range(3)]
    assert train["median"].tolist() == pytest.approx(expected, rel=1e-6)
    assert (train["ci_lo"] < train["median"]).all() and (train["median"] < train["ci_hi"]).all()
    assert train["n"].tolist() == [40, 40, 40]
    # throughput is batch / step time per step: about 32 / median (with 40 samples the
    # median of 32 / x averages two middle values, so not exactly)
    thr = __import__("bench.history").history.load(history_db, metric="throughput")
    assert thr[thr["workload"] == "train"]["median"].tolist() == pytest.approx(
        [32 / m for m in expected], rel=1e-4
    )


def test_show_filters_and_formats(history_db, tmp_path, capsys):
    runs = [run_at(tmp_path / "res", i) for i in range(4)]
    main(["history", "add", *map(str, runs), "--db", history_db, "--branch", "main"])
    capsys.readouterr()
    code = main([
        "history", "show", "--db", history_db, "--metric", "step_time", "--format", "json",
        "--where", "workload=train", "--commits", f"{commit(1)[:4]}..{commit(2)[:4]}",
    ])  # fmt: skip
    rows = json.loads(capsys.readouterr().out)
    assert code == 0
    assert [r["commit"] for r in rows] == [commit(1), commit(2)]
    assert {r["cell_id"] for r in rows} == {"jax-cpu-train-bs32-float32-synthetic"}
    assert main(["history", "show", "--db", history_db, "--format", "csv"]) == 0
    lines = capsys.readouterr().out.splitlines()[1:]
    metrics = {line.split(",")[7] for line in lines}
    # a row per run, cell and gated metric the records hold (step time, throughput, p99,
    # compile time, host memory...; device memory is unavailable on the CPU)
    assert {"step_time", "throughput", "compile_time"} <= metrics
    assert "device_memory" not in metrics
    assert len(lines) == 4 * 2 * len(metrics)


def test_adding_a_run_twice_adds_nothing(history_db, tmp_path, capsys):
    run = run_at(tmp_path / "res", 0)
    assert main(["history", "add", str(run), "--db", history_db]) == 0
    before = _count(history_db, "bench_points")
    assert main(["history", "add", str(run), "--db", history_db]) == 0
    assert "already in the history, nothing added" in capsys.readouterr().out
    assert _count(history_db, "bench_points") == before
    assert _count(history_db, "bench_runs") == 1


def test_import_adds_every_run_of_a_folder(history_db, tmp_path, capsys):
    for i in range(3):
        run_at(tmp_path / "res", i)
    assert main(["history", "import", str(tmp_path / "res"), "--db", history_db]) == 0
    assert main(["history", "import", str(tmp_path / "res"), "--db", history_db]) == 0
    assert _count(history_db, "bench_runs") == 3


def test_a_run_is_added_whole_or_not_at_all(history_db, tmp_path, monkeypatch):
    from bench.history import schema

    store = Store.open(history_db, write=True)
    original = schema.points.insert

    def failing():
        raise RuntimeError("the writer died here")

    monkeypatch.setattr(schema.points, "insert", failing)
    from bench.history.ingest import add_paths

    with pytest.raises(RuntimeError):
        add_paths(store, [run_at(tmp_path / "res", 0)], "main")
    monkeypatch.setattr(schema.points, "insert", original)
    assert _count(history_db, "bench_runs") == 0 and _count(history_db, "bench_cells") == 0
    store.close()


def test_two_writers_at_once_lose_nothing(history_db, tmp_path):
    from bench.cli.history import add_runs

    runs = [str(run_at(tmp_path / "res", i)) for i in range(4)]
    # two writers, each with its own connection, adding the same first run and runs of their
    # own at once (threads: the locks are per connection and per open lock file, as they are
    # between processes)
    start = threading.Barrier(2)
    failures: list[BaseException] = []

    def writer(mine: list[str]) -> None:
        start.wait()
        try:
            add_runs([runs[0], *mine], history_db, str(tmp_path), "main", None)
        except BaseException as exc:
            failures.append(exc)

    threads = [threading.Thread(target=writer, args=(m,)) for m in (runs[1:2], runs[2:4])]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not failures, failures
    assert _count(history_db, "bench_runs") == 4
    # every run whole: each of the 4 has as many points as the first
    first = _count(history_db, "bench_points WHERE run_id = 'run000'")
    assert first >= 2 * 5 and _count(history_db, "bench_points") == 4 * first
    assert _count(history_db, "bench_cells") == 4 * 2


# ------------------------------------------------------------------ hostile


def _one_line_exit_2(argv: list[str], capsys) -> str:
    assert main(argv) == 2
    text = capsys.readouterr().err.strip()
    assert "\n" not in text and "Traceback" not in text, text
    return text


def test_unreachable_server_is_one_line(capsys):
    text = _one_line_exit_2(
        ["history", "show", "--db", "postgresql+psycopg://me:secret@127.0.0.1:1/h"], capsys
    )
    assert "127.0.0.1:1" in text and "cannot use the database" in text
    assert "secret" not in text


def test_damaged_database_is_refused_and_kept(tmp_path, capsys):
    bad = tmp_path / "history.sqlite"
    bad.write_bytes(b"not a database, a text file someone saved here\n" * 20)
    text = _one_line_exit_2(
        ["history", "add", str(run_at(tmp_path / "r", 0)), "--db", str(bad)], capsys
    )
    assert "not a readable bench history" in text and str(bad) in text
    assert bad.read_bytes().startswith(b"not a database")


def test_newer_schema_is_refused_and_untouched(history_db, tmp_path, capsys):
    from sqlalchemy import create_engine, text

    Store.open(history_db, write=True).close()
    engine = create_engine(history_db)
    with engine.begin() as conn:
        conn.execute(text("UPDATE bench_schema_version SET version_num = '9000'"))
    engine.dispose()
    for argv in (
        ["history", "add", str(run_at(tmp_path / "r", 0)), "--db", history_db],
        ["history", "show", "--db", history_db],
    ):
        text_ = _one_line_exit_2(argv, capsys)
        assert "'9000' was written by a newer bench" in text_
    assert _count(history_db, "bench_runs") == 0


def test_run_without_commit_names_the_field(tmp_path, capsys):
    run = run_at(tmp_path / "r", 0)
    meta = json.loads((run / "run.json").read_text())
    meta["environment"]["git"] = {"commit": None, "dirty": None}
    (run / "run.json").write_text(json.dumps(meta))
    text = _one_line_exit_2(
        ["history", "add", str(run), "--db", str(tmp_path / "h.sqlite")], capsys
    )
    assert "environment.git.commit" in text and "--commit" in text
    assert (
        main(["history", "add", str(run), "--db", str(tmp_path / "h.sqlite"), "--commit", "abc"])
        == 0
    )


def test_missing_history_and_missing_run(tmp_path, capsys):
    text = _one_line_exit_2(["history", "show", "--db", str(tmp_path / "none.sqlite")], capsys)
    assert "no history here yet" in text
    text = _one_line_exit_2(
        ["history", "add", str(tmp_path / "nope"), "--db", str(tmp_path / "h.sqlite")], capsys
    )
    assert "nope" in text


def test_store_errors_are_history_errors(tmp_path):
    with pytest.raises(HistoryError, match="not a database URL"):
        Store.open("::::", write=False)
    with pytest.raises(HistoryError, match="no SQLAlchemy dialect"):
        Store.open("nosuchdb://x/y", write=False)


def test_bigquery_without_its_dialect_says_what_to_install(capsys):
    pytest.importorskip("sqlalchemy")
    try:
        import sqlalchemy_bigquery  # noqa: F401
    except ImportError:
        pass
    else:
        pytest.skip("sqlalchemy-bigquery is installed: this checks the message without it")
    text = _one_line_exit_2(["history", "show", "--db", "bigquery://project/dataset"], capsys)
    assert "pip install 'bench[bigquery]'" in text


def test_the_median_interval_matches_scipys_binomial_and_needs_no_scipy():
    import subprocess
    import sys

    import numpy as np
    from scipy.stats import binom

    from bench.history.points import median_interval

    for n in (5, 6, 9, 10, 30, 101, 1000):
        x = np.arange(n, dtype=float)
        k = int(binom.ppf(0.025, n, 0.5))
        expected = (x[0], x[-1]) if k < 1 or n - k < k else (x[k - 1], x[n - k])
        assert median_interval(x) == expected
    # scipy is a test dependency only: the history must import without it
    blocked = "import sys; sys.modules['scipy'] = None; import bench.history.points"
    assert subprocess.run([sys.executable, "-c", blocked], check=False).returncode == 0

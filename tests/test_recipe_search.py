# SPDX-License-Identifier: Apache-2.0
"""The recipe search's plan: every variant trains with the base flags plus its own change, for the same wall-clock,
and is evaluated on the validation split."""

import pytest
from script_loading import load_script

search = load_script("benchmarks/recipe_search.py", "syn2seq_recipe_search")


def _flags(argv: list[str]) -> dict[str, str | None]:
    out, i = {}, 0
    while i < len(argv):
        if argv[i].startswith("--"):
            value = argv[i + 1] if i + 1 < len(argv) and not argv[i + 1].startswith("--") else None
            out[argv[i]] = value
            i += 1 if value is None else 2
        else:
            i += 1
    return out


def test_plan_changes_one_factor_at_a_time_at_equal_wall_clock(tmp_path):
    runs = search.main(["--dry_run", "--work_dir", str(tmp_path), "--minutes", "7"])["runs"]
    names = [run["name"] for run in runs]
    assert names[0] == "base" and len(names) >= len(search.VARIANTS) - 1  # style=flat needs the renderer's styles
    base = _flags(runs[0]["argv"])
    for run in runs:
        flags = _flags(run["argv"])
        assert flags["--max_train_minutes"] == "7" and flags["--dataset_dir"].endswith(run["style"])
        per_run = {"--output_dir", "--model_config", "--dataset_dir"}
        changed = {k for k in set(base) | set(flags) if base.get(k) != flags.get(k)} - per_run
        expected = set(search.VARIANTS[run["name"]][0])
        assert changed == expected, (run["name"], changed)
        _, eval_argv = search.evaluation_command(search.parse_args(["--work_dir", str(tmp_path)]), run)
        assert _flags(eval_argv)["--split"] == "validation"  # the test split is never searched on
    assert runs[names.index("wider=6x192")]["model_config"]["num_layers"] == 6


def test_unknown_variants_and_bad_budgets_are_refused(capsys):
    with pytest.raises(SystemExit):
        search.parse_args(["--only", "loss=huber"])
    assert "unknown variants ['loss=huber']" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        search.parse_args(["--minutes", "0"])


def test_bad_counts_and_a_missing_results_file_are_refused_before_any_run(tmp_path, capsys):
    """Issue 24: `--num_samples 0` failed only after every training run; `--report_only` without saved results
    raised a FileNotFoundError traceback."""
    with pytest.raises(SystemExit):
        search.parse_args(["--num_samples", "0"])
    assert "--num_samples: expected an integer >= 1, got 0" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        search.main(["--report_only", "--results_dir", str(tmp_path)])
    assert (f"--report_only: expected the saved results {tmp_path / 'recipe_search.json'}, which does not exist (run "
            "the search first, or pass --results_dir)") in capsys.readouterr().err

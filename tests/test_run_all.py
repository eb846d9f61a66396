# SPDX-License-Identifier: Apache-2.0
"""`benchmarks/run_all.py`: table parsing and BENCHMARKS.md block writing on canned benchmark outputs, and one real
`--quick` run (slow: ~70 s on the 2-core CI machine)."""

import shutil

import pytest
from script_loading import REPO, load_script

run_all = load_script("benchmarks/run_all.py")

TRANSFORMER_OUT = """# CPU flags: avx2 fma
# measured matmul peak (1024^3): fp32 0.09 TFLOP/s, bf16 0.02 TFLOP/s

| mode | pass | median s | tokens/s | TFLOP/s | % of matmul peak | peak mem MB |
|---|---|---|---|---|---|---|
| fp32 | forward | 1.655 | 1,238 | 0.10 | 113% | 615 |
| fp32 | fwd+bwd | 5.634 | 364 | 0.09 | 100% | 1,848 |
"""
TRAINING_OUT = """some log line
| precision | grad. checkpointing | step (s) | samples/s | activation MB |
|---|---|---|---|---|
| fp32 | no | 0.045 | 44.9 | 9.2 |
| bf16 | yes | 0.197 | 10.2 | 1.2 |

fp32: checkpointing cuts activation memory by 84% at +40% step time.
"""


def _children():
    return [{"name": "transformer (DiT-S)", "script": "bench_transformer.py", "args": [], "output": TRANSFORMER_OUT,
             "returncode": 0, "seconds": 12.0},
            {"name": "DiT training step", "script": "bench_training.py", "args": ["--preset", "dit-tiny"],
             "output": TRAINING_OUT, "returncode": 0, "seconds": 30.0},
            {"name": "broken", "script": "bench_uvit.py", "args": [], "output": "Traceback ...", "returncode": 1,
             "seconds": 1.0}]


def test_parse_tables_finds_header_and_rows():
    tables = run_all.parse_tables(TRANSFORMER_OUT + "\ntext\n" + TRAINING_OUT)
    assert [t[0][:2] for t in tables] == [["mode", "pass"], ["precision", "grad. checkpointing"]]
    assert tables[0][1][1] == ["fp32", "fwd+bwd", "5.634", "364", "0.09", "100%", "1,848"]
    assert len(tables[1][1]) == 2


def test_combined_block_has_one_row_per_measurement_and_the_peak():
    block = run_all.render_block(_children(), {"fp32": 0.0912, "bf16": 0.0187}, "test machine", "python x")
    assert block.startswith(run_all.START) and block.endswith(run_all.END)
    assert "fp32 0.091 TFLOP/s, bf16 0.019 TFLOP/s" in block
    assert "| transformer (DiT-S) | fp32, forward | 1.655 (median s) | 1,238 tokens/s | TFLOP/s 0.10; % of matmul " \
           "peak 113%; peak mem MB 615 |" in block
    assert "| DiT training step | bf16, grad. checkpointing: yes | 0.197 (step (s)) | 10.2 samples/s | " \
           "activation MB 1.2 |" in block
    assert "| broken | (no table in the output) |" in block
    assert "`python benchmarks/bench_training.py --preset dit-tiny` (30 s, exit 0)" in block


def test_write_block_replaces_only_the_marked_block(tmp_path):
    path = tmp_path / "BENCHMARKS.md"
    path.write_text("# Benchmarks\n\nintro\n\n## Transformer\n\nold numbers\n")
    run_all.write_block(path, f"{run_all.START}\nfirst\n{run_all.END}")
    text = path.read_text()
    assert text.index(run_all.START) < text.index("intro") and "## Transformer\n\nold numbers" in text
    run_all.write_block(path, f"{run_all.START}\nsecond\n{run_all.END}")
    text = path.read_text()
    assert "second" in text and "first" not in text and text.count(run_all.START) == 1
    assert text.startswith("# Benchmarks\n") and "## Transformer\n\nold numbers\n" in text


def test_repository_benchmarks_md_has_the_markers_at_the_top():
    text = (REPO / "BENCHMARKS.md").read_text()
    assert text.index(run_all.START) < text.index(run_all.END) < text.index("## Transformer throughput")


@pytest.mark.slow
def test_quick_run_writes_a_table(tmp_path):
    target = tmp_path / "BENCHMARKS.md"
    shutil.copy(REPO / "BENCHMARKS.md", target)
    assert run_all.main(["--quick", "--output", str(target)]) == 0
    text = target.read_text()
    block = text[text.index(run_all.START):text.index(run_all.END)]
    for name, *_ in run_all.BENCHMARKS:
        assert f"| {name} |" in block
    assert "Measured matmul peak" in block and "## Training step (issue 6)" in text


def test_quick_runs_never_replace_the_committed_table(tmp_path, monkeypatch, capsys):
    assert run_all.output_path(None, quick=True, no_write=False) is None
    assert run_all.output_path(None, quick=False, no_write=False) == REPO / "BENCHMARKS.md"
    assert run_all.output_path(tmp_path / "x.md", quick=True, no_write=False) == tmp_path / "x.md"
    assert run_all.output_path(tmp_path / "x.md", quick=False, no_write=True) is None
    # main() end to end with the benchmark subprocesses replaced by canned output (they take minutes)
    monkeypatch.setattr(run_all, "measure_matmul_peak", lambda device, size: {"fp32": 0.1, "bf16": 0.02})
    monkeypatch.setattr(run_all, "run_child", lambda script, args, device, timeout: {
        "script": script, "args": args, "output": TRAINING_OUT, "returncode": 0, "seconds": 1.0})
    before = (REPO / "BENCHMARKS.md").read_bytes()
    assert run_all.main(["--quick", "--only", "bench_training.py"]) == 0
    assert (REPO / "BENCHMARKS.md").read_bytes() == before
    assert "BENCHMARKS.md left as it is" in capsys.readouterr().out

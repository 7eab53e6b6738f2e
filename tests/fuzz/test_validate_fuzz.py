"""A bounded fuzzing run of `spectra validate`: whatever the input, exit 0 or 1 and never a traceback.

Hypothesis draws manifests (tests/fuzz/strategies.py) round after round, each round with a new seed,
until the time budget is spent: SPECTRA_FUZZ_SECONDS, 60 s under CI, 15 s otherwise. Each case runs the
`validate` command in this process (click's test runner, so an unexpected exception is caught and shown
with its shrunk input); a sample of every round is then given to the real `spectra` process at once.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, Phase, given, seed, settings

from spectra.cli import validate
from tests.support.processes import run_spectra

from .strategies import manifests

pytestmark = pytest.mark.e2e  # it runs the real `spectra validate` too; 60 s: not for the inner loop

BUDGET_S = float(os.environ.get("SPECTRA_FUZZ_SECONDS") or (60 if os.environ.get("CI") else 15))
ROUND = 100  # cases per seed; a failure shrinks within its round
SAMPLE_EVERY = 7  # cases kept for the run of the real process


def _write(path: Path, text: str) -> None:
    path.write_bytes(text.encode("utf-8", "surrogatepass"))  # lone surrogates become invalid UTF-8: also input


def test_validate_exits_0_or_1_and_never_shows_a_traceback(tmp_path: Path) -> None:
    runner = CliRunner()
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    counts = {"cases": 0, "invalid": 0}

    def one_case(text: str) -> None:
        case = tmp_path / "case.yaml"
        _write(case, text)
        result = runner.invoke(validate, ["--quiet", str(case)], catch_exceptions=True)
        if result.exception is not None and not isinstance(result.exception, SystemExit):
            raise result.exception  # hypothesis shrinks it and prints the input
        assert result.exit_code in (0, 1), result.output
        assert "Traceback" not in result.output
        counts["cases"] += 1
        counts["invalid"] += result.exit_code
        if counts["cases"] % SAMPLE_EVERY == 0:
            _write(corpus / f"case-{counts['cases']:06d}.yaml", text)

    deadline = time.monotonic() + BUDGET_S
    round_seed = 0
    while time.monotonic() < deadline:
        fuzz_round = seed(round_seed)(
            settings(
                max_examples=ROUND,
                deadline=None,
                database=None,
                phases=[Phase.generate, Phase.shrink],
                suppress_health_check=list(HealthCheck),
            )(given(text=manifests())(one_case))
        )
        fuzz_round()
        round_seed += 1

    # Shown with `pytest -s` (and in CI's log when the assertions below fail): how much ground was covered.
    print(f"spectra validate fuzzed: {counts['cases']} cases in {round_seed} rounds, {counts['invalid']} refused")
    assert counts["cases"] >= ROUND, f"only {counts['cases']} cases in {BUDGET_S:g} s"
    assert 0 < counts["invalid"] < counts["cases"], f"the corpus has both valid and invalid sets: {counts}"

    done = run_spectra("validate", "--quiet", str(corpus), timeout=300)
    assert done.returncode == 1, done.stdout + done.stderr  # the sample holds invalid files
    assert "Traceback" not in done.stdout + done.stderr
    named = {line.split(": ", 1)[0] for line in done.stdout.splitlines() if line}
    assert named <= {str(path) for path in corpus.iterdir()}, "every error line starts with the file it is about"

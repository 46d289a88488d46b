"""bench.direct_cost still works: private messages between pairs, with history off and on."""

from __future__ import annotations

import pytest

from bench import direct_cost


@pytest.mark.parametrize("history", [False, True], ids=["history-off", "history-on"])
def test_direct_cost_exchanges_and_reports(history: bool, capsys: pytest.CaptureFixture[str]) -> None:
    # With history, direct() checks that every message reached the database.
    argv = ["--pairs", "3", "--messages", "40", *(["--history"] if history else [])]
    assert direct_cost.main(argv) == 0
    assert capsys.readouterr().out.endswith(
        f"us per private message (3 pairs, 40 messages each, history {'on' if history else 'off'})\n")

"""bench/refusals.py runs and measures what it says (a small run)."""

import json

from bench import refusals


def test_a_small_run_prints_the_rows_each_way(capsys):
    refusals.main(["--frames", "4", "--tlvs", "10"])
    summed = json.loads(capsys.readouterr().out)
    assert summed["refused_tlvs"] == 40 and summed["event_rows_by_kind"]["vsi.refused"] == 5
    assert summed["event_rows_by_kind"]["vsi.refused_summary"] == 1
    refusals.main(["--frames", "4", "--tlvs", "10", "--tell-all"])
    told = json.loads(capsys.readouterr().out)
    assert told["event_rows_by_kind"] == {"vsi.refused": 40}

"""The failover benchmark's arithmetic (bench/failover.py), pure: when each switch came under
the new leader, and the summary of the kills against the issue's targets."""

import re
import statistics

TARGET_TAKEOVER_S = 2.0  # issue 13: switches under the new leader within 2 s, median of the kills
_NEXT = re.compile(r'<([^>]+)>\s*;\s*rel="next"')


def takeover(masters_by_switch, old_generation: int, killed: int) -> tuple[int, list[float]] | None:
    """(generation, [time per switch]) of the leadership that followed the kill: per switch the
    first MASTER request (time, generation, controller) of a generation above `old_generation`
    from a controller other than the killed one; None while a switch has none. The generation
    is the highest one seen (two would mean two elections: the switches followed the later)."""
    times, generations = [], set()
    for masters in masters_by_switch:
        first = next(
            ((t, gen) for t, gen, ctl in masters if gen > old_generation and ctl != killed), None
        )
        if first is None:
            return None
        times.append(first[0])
        generations.add(first[1])
    return max(generations, default=old_generation), times


def next_page(link_header: str | None) -> str | None:
    """The target of an RFC 8288 Link header's rel="next" (docs/rest.md, Pages)."""
    match = _NEXT.search(link_header or "")
    return match.group(1) if match else None


def _stats(values) -> dict | None:
    values = [v for v in values if v is not None]
    if not values:
        return None
    return {"median": round(statistics.median(values), 3), "max": round(max(values), 3)}


def summarize(kills: list[dict]) -> dict:
    """Medians and maxima over the kills, totals of what must be zero, and the targets met."""
    takeovers = [k.get("switches_under_new_leader_s") for k in kills]
    timed_out = sum(t is None for t in takeovers)
    late = [
        k.get("associate_during_failover") or [{"answered": False, "flows_work": False}]
        for k in kills
    ]
    probes = [k["probe_lost"] for k in kills if k.get("probe_lost") is not None]
    summary = {
        "kills": len(kills),
        "kills_failed": [k["n"] for k in kills if "error" in k],  # a step timed out: see its error
        "takeovers_timed_out": timed_out,
        "switches_under_new_leader_s": _stats(takeovers),
        "sim_switches_under_new_leader_s": _stats(k.get("sim_s") for k in kills),
        "ovs_bridges_under_new_leader_s": _stats(k.get("ovs_s") for k in kills),
        "ovs_database_shows_it_s": _stats(k.get("ovs_db_s") for k in kills),
        "new_leader_known_s": _stats(k.get("leader_known_s") for k in kills),
        "reconciled_s": _stats(k.get("reconciled_s") for k in kills),
        "associations_lost": sum(k.get("associations_lost", 0) for k in kills),
        "probe_lost": sum(probes) if probes else None,  # None: no probe (no bed)
        "probe_max_gap_ms": _stats(k.get("probe_max_gap_ms") for k in kills),
        "keepalive_expiries": sum(k.get("keepalive_expiries", 0) for k in kills),
        "associates_during_failover_answered": sum(all(a["answered"] for a in x) for x in late),
        "associates_during_failover_working": sum(all(a["flows_work"] for a in x) for x in late),
    }
    # a kill whose switches never came under a new leader is slower than any that did
    median = statistics.median(float("inf") if t is None else t for t in takeovers)
    summary["targets_met"] = {
        "takeover_median_le_2s": median <= TARGET_TAKEOVER_S,
        "every_kill_measured": not summary["kills_failed"],
        "no_association_lost": summary["associations_lost"] == 0,
        "no_probe_packet_lost": summary["probe_lost"] == 0 if probes else None,
        "no_keepalive_expiry": summary["keepalive_expiries"] == 0,
        "associate_during_failover_answered_and_working": (
            summary["associates_during_failover_working"] == len(kills)
        ),
    }
    return summary

"""Faults and maintenance (OPNFV Doctor): alarms from fault events, subscribers notified at
once, servers in maintenance."""

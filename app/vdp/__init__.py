"""VDP, bridge role: the per-VSI state machine and the bindings it produces."""

"""Several controllers, one leader (docs/ha.md): the election through etcd and the OpenFlow
roles it decides."""

# The exit status of a leader that was deposed (docs/ha.md): its supervisor starts it again. Here,
# apart from the os-ken app, so that supervisors need not import it.
EXIT_DEPOSED = 3

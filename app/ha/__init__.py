"""Several controllers, one leader (docs/ha.md): the election through etcd and the OpenFlow
roles it decides."""

"""A load generator that plays OpenFlow 1.3 switches and lldpad-like EVB/VDP stations over real
TCP against a real evb-nms (think cbench / ovn-heater). bench/scale.py is its command line.

* ofwire.py: OpenFlow 1.3 encoding/decoding by hand with struct (os-ken's parser is far too
  slow for thousands of messages per second);
* switch.py: one simulated switch: ports, a flow table and meters that apply what the controller
  sends, multipart replies, packet-in / packet-out;
* station.py: the station on one server port: LLDP/EVB, ECP (one PDU outstanding, retransmit,
  ACK), VDP Associate and keep-alives, timing of each request;
* fabric.py: the switches, links and stations together on one asyncio event loop, with the
  timers (one tick), the rate limiter and the statistics.

One process is enough: its own Python work per OpenFlow message is a few microseconds; most of
its CPU goes to the socket system calls (profiled with py-spy), and bench/scale.py reports it
(generator.cpu_percent_association, cpu_us_per_message) so a run shows it was not the limit.
"""

"""The operations around the service on a developer's machine: the embedded stack and its tiers,
the balancer and its instances, process control and the `python -m ops` command line. Imports
service/, never the reverse; the image carries service/ only."""

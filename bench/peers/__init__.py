"""The peer stacks of the benchmarks (bench/peers/commands.py says how each is started). Nothing is
imported here: the gevent peer must monkey-patch before anything else loads."""

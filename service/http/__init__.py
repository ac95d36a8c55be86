"""The HTTP front: the protocol every worker serves with (protocol.py), the route table of what it
answers itself (routes.py), the one writer of response heads (writer.py), what it reads of a head
(parse.py), and the one module that touches Sanic's private names (sanic_side.py). See
docs/ARCHITECTURE.md."""

"""OSC: the control server, its ingress and TCP transport, OSCQuery, the analysis streams out."""

"""Clustering: several balancers as one, sharing runtime state through Redis (``[cluster]``).

Everything here runs in the control plane (the balancer's event loop, off the request path);
the data plane never waits on Redis, so losing Redis never fails a request.
"""

"""Temporary shim, removed at merge: the labels now live in :mod:`balancer.labels`."""
# temporary shim, removed at merge

from balancer.labels import labels_of  # noqa: F401  # temporary shim, removed at merge

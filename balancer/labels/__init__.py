"""Labels: where a dataset keeps them, and their canonical single-label and multi-label forms.

- :func:`labels_of` finds the labels of a dataset without reading its items (one dispatch
  tree, ``_sources``), for one class per item or, with ``multilabel=True``, a set per item;
- ``_tables`` reads a column of a DataFrame, a CSV/TSV file or a list of dicts;
- ``_single`` turns one label per item into :class:`EncodedLabels` (:func:`encode_labels`);
- ``_items`` reads the class of one stream item as it arrives (:class:`ItemLabels`);
- ``_multi`` turns label sets into :class:`MultiLabels` (:func:`encode_multilabels`).

Other modules import labels from here only.
"""

from balancer.labels._items import ItemLabels
from balancer.labels._multi import NO_FINDING, MultiLabels, encode_multilabels
from balancer.labels._single import EncodedLabels, encode_labels, label_array
from balancer.labels._sources import labels_of, multilabels_of

__all__ = [
    "NO_FINDING",
    "EncodedLabels",
    "ItemLabels",
    "MultiLabels",
    "encode_labels",
    "encode_multilabels",
    "label_array",
    "labels_of",
    "multilabels_of",
]

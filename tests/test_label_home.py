"""Labels have one home: no module outside ``balancer.labels`` finds or encodes labels.

(The import-circle check for the whole project, labels included, is ``test_import_graph.py``.)
"""

from __future__ import annotations

import pathlib

import balancer

PACKAGE = pathlib.Path(balancer.__file__).parent
LABEL_CODE = ("def labels_of", "def multilabels_of", "def encode_labels", "def encode_multilabels",
              "class MultiLabels", "class EncodedLabels", "def label_array")


def test_no_module_outside_the_labels_package_holds_label_code():
    for path in PACKAGE.rglob("*.py"):
        if path.relative_to(PACKAGE).parts[0] == "labels":
            continue
        text = path.read_text()
        for definition in LABEL_CODE:
            assert definition not in text, f"{path} defines {definition.split()[1]}"

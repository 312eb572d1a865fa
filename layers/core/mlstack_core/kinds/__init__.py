"""Column kinds: what a column is read as, why, and how its raw values become model inputs.

One module per kind's conversion (``numbers``, ``datetimes``, ``text``) and one that decides the
kinds from the data (``inference``). Training, the gate, batch scoring, the Monitor and the
prediction function all convert through these modules, so what is scored is what is served.
numpy and the standard library only: the training layer has no onnxruntime, the serving layer no
scikit-learn.
"""

from typing import Final

NUMERIC: Final = "numeric"
CATEGORICAL: Final = "categorical"
DATETIME: Final = "datetime"
TEXT: Final = "text"
IDENTIFIER: Final = "identifier"
KINDS: Final = (NUMERIC, CATEGORICAL, DATETIME, TEXT, IDENTIFIER)
# Kinds that are model inputs; an identifier never is.
FEATURE_KINDS: Final = (NUMERIC, CATEGORICAL, DATETIME, TEXT)

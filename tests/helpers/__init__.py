"""Code the test modules share: table generators, stand-ins for the stack and the Lambda context,
model fixtures, readers of what the functions print.

Test modules import shared code from here only, never from another test module or a conftest.py;
pytest fixtures stay in the conftest.py files (which call these helpers).
"""

from pathlib import Path

# The checkout: template.yaml, statemachine/, tests/events/ and the docs are read from here.
ROOT = Path(__file__).resolve().parents[2]

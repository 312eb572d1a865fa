"""``python -m mlstack.cli``: the same as the ``mlstack`` command."""

from mlstack.cli.main import main

raise SystemExit(main())

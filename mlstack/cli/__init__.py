"""The user's side: the ``mlstack`` command line, its views, and the libraries its commands use
(``stack`` finds a stack's resources through its Outputs, ``lifecycle`` moves aliases,
``progress`` follows a run, ``report`` draws a version's plots, ``demo`` runs the whole loop)."""

"""Build-time checks, never deployed: the template (``template``), the built packages
(``build``: sizes and handler imports) and the metrics catalogue (``catalogue``)."""

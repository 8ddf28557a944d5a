"""plotly's ``graph_objects``, imported after pandas has finished importing.

plotly looks pandas up in ``sys.modules`` without importing it, on every figure it validates.
While another thread (the dashboard's warm-up, a page) is importing pandas, it finds the module
half made and raises ``AttributeError: partially initialized module 'pandas' has no attribute
'Series'``. ``import pandas`` waits for an import in progress in another thread to finish, so
once this module is imported, pandas is whole, in every thread.
"""

import pandas  # noqa: F401
import plotly.graph_objects as go

__all__ = ["go"]

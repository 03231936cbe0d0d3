import sys
from pathlib import Path

import matplotlib
import pytest

matplotlib.use("Agg")   # the pytest process only; notebook kernels choose their own backend
sys.path.insert(0, str(Path(__file__).resolve().parent))


@pytest.fixture(scope="session")
def ipython_shell():
    """A bare IPython shell so figures and DataFrames become image/png and text/html bundles."""
    from IPython.core.interactiveshell import InteractiveShell
    from IPython.core.pylabtools import select_figure_formats
    shell = InteractiveShell.instance()
    select_figure_formats(shell, {"png"})
    return shell

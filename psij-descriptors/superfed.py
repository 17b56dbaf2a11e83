"""PSI/J's registration of the ``superfed`` executor (broker/psij_executor.py).

PSI/J scans every ``sys.path`` entry for a ``psij-descriptors`` directory (a namespace package:
no ``__init__.py``, so this one and psij-python's own merge) and loads each descriptor's class
from the same entry (``<entry>/broker/psij_executor.py``)."""

from packaging.version import Version
from psij.descriptor import Descriptor

__PSI_J_EXECUTORS__ = [
    Descriptor(name="superfed", nice_name="superfed broker", version=Version("0.1.0"),
               cls="broker.psij_executor.SuperfedJobExecutor"),
]

"""A local stand-in for the AWS services this project uses, on one loopback endpoint.

Development and test dependency only: nothing in dags/ or plugins/ imports it.
"""

import sys
from pathlib import Path

DEFAULT_ACCOUNT_ID = "123456789012"

# The stand-in shares the project's pure functions (request validation against botocore's model, box quality) with
# the library in plugins/, so it finds that package beside itself when started without the project's PYTHONPATH.
_PLUGINS = Path(__file__).resolve().parent.parent / "plugins"
if (_PLUGINS / "groundtruth").is_dir() and str(_PLUGINS) not in sys.path:
    sys.path.append(str(_PLUGINS))

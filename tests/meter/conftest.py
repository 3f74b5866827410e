import sys
from pathlib import Path

# The tiny model/data helpers (meter_tiny.py) are also run as a script by the process tests.
sys.path.insert(0, str(Path(__file__).resolve().parent))

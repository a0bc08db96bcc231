import sys
from pathlib import Path

# Make `tests.oracles` importable as `oracles` wherever pytest is started from.
sys.path.insert(0, str(Path(__file__).parent))

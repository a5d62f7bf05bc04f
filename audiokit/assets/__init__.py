"""Files audiokit ships: the WordNet example sentences and Whisper's BPE rank files (licences beside them)."""
from pathlib import Path

ASSETS_DIR = Path(__file__).resolve().parent

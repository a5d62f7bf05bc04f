"""The audiokit TTS demo: ``python app.py`` serves it at http://127.0.0.1:7860 on the bundled models.

Options (``python app.py --help``): other model folders (``--valle``, ``--tortoise``, ``--asr``), ``--host``,
``--port``, ``--device``. The same as ``audiokit demo``.
"""
import sys

from audiokit.demo import main

if __name__ == "__main__":
    sys.exit(main())

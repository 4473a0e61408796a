"""The environment every test and benchmark runs in: no hub, no Ultralytics downloads or
installs, a throw-away Ultralytics settings folder.

Import it before transformers, huggingface_hub, sentence-transformers or ultralytics: they read
these variables on import (torch does not).
"""

import os
import tempfile

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("YOLO_OFFLINE", "1")
os.environ.setdefault("YOLO_AUTOINSTALL", "0")
os.environ.setdefault("YOLO_CONFIG_DIR", tempfile.mkdtemp(prefix="imgret-yolo-"))
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

#!/usr/bin/env bash
# Set up (if needed), index gallery/ and search it: bash scripts/demo.sh "a bus in the street ."
#
# IMGRET_PROFILE picks the models: "cpu" (default; light, real models that run anywhere:
# YOLOX-Nano counts + EfficientNet-Lite0 tags + all-MiniLM-L6-v2) or "original" (FuseCap + YOLOv8 + tweet-topic +
# INSTRUCTOR-large, as the original framework; wants a GPU and the weights, see README).
set -euo pipefail
cd "$(dirname "$0")/.."
query="${1:-a bus in the street .}"
profile="${IMGRET_PROFILE:-cpu}"
bash scripts/setup.sh "minilm,ocr,faiss,serve,tagger"

# gallery/ ships empty: seed it with the two real photos that come with ultralytics.
if [ -z "$(find gallery -type f ! -name README.md -print -quit)" ]; then
  YOLO_VERBOSE=False .venv/bin/python -c "
import shutil, ultralytics.utils as u
for name in ('bus.jpg', 'zidane.jpg'):
    shutil.copy(u.ASSETS / name, 'gallery/' + name)
print('gallery/ was empty: added bus.jpg and zidane.jpg from ultralytics')"
fi

# The cpu profile counts objects with YOLOX-Nano (ONNX) from models/yolox-nano/.
if [ "$profile" = cpu ] && [ ! -e models/yolox-nano ]; then
  if [ -d ../shared/models/yolox-nano ]; then
    ln -s "$(cd ../shared/models/yolox-nano && pwd)" models/yolox-nano
  else
    bash scripts/get_yolox_nano.sh
  fi
fi

.venv/bin/imgret index gallery --profile "$profile"
.venv/bin/imgret search "$query" -k 5 --plot tmp/search.png
echo "browse, explain and fix the hits in a web page: .venv/bin/imgret serve  (then open http://127.0.0.1:8765/)"

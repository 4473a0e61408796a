#!/usr/bin/env bash
# Download the real YOLOX-Nano ONNX (Megvii, Apache-2.0) and its COCO class names into models/.
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p models/yolox-nano
base=https://github.com/Megvii-BaseDetection/YOLOX/releases/download/0.1.1rc0
curl -fL -o models/yolox-nano/yolox_nano.onnx "$base/yolox_nano.onnx"
# ultralytics ships the 80 COCO class names in YOLOX's output order.
.venv/bin/python -c "
import pathlib, ultralytics, yaml
names = yaml.safe_load((pathlib.Path(ultralytics.__file__).parent / 'cfg/datasets/coco.yaml').read_text())['names']
pathlib.Path('models/yolox-nano/coco_classes.txt').write_text('\n'.join(names[i] for i in sorted(names)) + '\n')"
echo "saved models/yolox-nano/"

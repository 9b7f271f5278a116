#!/bin/sh
# Photographs for `run.py eval composer --photos DIR`: Debian's freely licensed wallpaper packages.
# Downloads the .deb files (apt-get download, no install), unpacks them and copies the photographs,
# reduced to 1024 px on the long side, into DIR (default: photos/wallpapers). Nothing is committed.
# Only the photographs are kept (the packages also hold drawings and abstract patterns): 24 pictures,
# from a storm over the sea and a dark lake to yellow flowers, colourful cups and a kite in the sky.
# Usage: tools/fetch_wallpapers.sh [DIR]
set -eu
out="${1:-photos/wallpapers}"
packages="mate-backgrounds plasma-workspace-wallpapers"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
mkdir -p "$out"
(cd "$work" && apt-get download $packages >/dev/null)
for deb in "$work"/*.deb; do
    dpkg-deb -x "$deb" "$work/root"
done
python3 - "$work/root" "$out" <<'PY'
import sys
from pathlib import Path

import cv2

PHOTOGRAPHS = {
    # mate-backgrounds
    "Aqua", "Blinds", "Dune", "FreshFlower", "Garden", "GreenMeadow", "LadyBird", "RainDrops", "Storm",
    "TwoWings", "Wood", "YellowFlower",
    # plasma-workspace-wallpapers
    "BytheWater", "ColdRipple", "ColorfulCups", "DarkestHour", "EveningGlow", "FallenLeaf", "Kite", "MilkyWay",
    "OneStandsOut", "Path", "Volna", "summer_1am",
}
root, out = Path(sys.argv[1]), Path(sys.argv[2])
seen = set()
for path in sorted(root.rglob("*")):
    if path.suffix.lower() not in (".jpg", ".jpeg", ".png") or path.is_symlink():
        continue
    # plasma ships one picture in many sizes (THEME/contents/images/WxH.jpg): keep one of each
    key = path.parts[-4] if path.parent.name == "images" else path.stem
    if key not in PHOTOGRAPHS or key in seen:
        continue
    img = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if img is None:
        continue
    seen.add(key)
    scale = 1024 / max(img.shape[:2])
    if scale < 1:
        img = cv2.resize(img, (round(img.shape[1] * scale), round(img.shape[0] * scale)), interpolation=cv2.INTER_AREA)
    name = "".join(c if c.isalnum() or c in "-_" else "_" for c in key)[:60] + ".jpg"
    cv2.imwrite(str(out / name), img, [cv2.IMWRITE_JPEG_QUALITY, 92])
    print(out / name)
PY

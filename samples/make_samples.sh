#!/usr/bin/env bash
# Regenerate samples/: the inputs (exported from scikit-image's bundled, licence-clean images, or made
# by dreamstyle itself) and every output, with the exact commands that samples/README.md lists.
#
#   bash samples/make_samples.sh                 # everything (what `make samples` runs)
#   bash samples/make_samples.sh inputs transfer # only some sections
#
# Sizes and iteration counts are kept CPU-friendly (the default vgg19 weights, no download).
# To add samples, append a section: `if want NAME; then run $DS ...; fi`, and list its outputs
# and commands in samples/README.md.
set -euo pipefail
cd "$(dirname "$0")/.."

PY=${PYTHON:-$([ -x .venv/bin/python ] && echo .venv/bin/python || echo python3)}
DS=${DREAMSTYLE:-$([ -x .venv/bin/dreamstyle ] && echo .venv/bin/dreamstyle || echo dreamstyle)}
IN=samples/inputs
SECTIONS=" ${*:-all} "
want() { [[ "$SECTIONS" == *" all "* || "$SECTIONS" == *" $1 "* ]]; }
run() { echo "+ $*" >&2; "$@"; }
mkdir -p "$IN"

# --- inputs: scikit-image's bundled photos, licences in samples/README.md -------------------------
if want inputs; then
  "$PY" - <<'EOF'
from PIL import Image
import skimage.data as data

for name, longest in [("chelsea", None), ("astronaut", 384), ("immunohistochemistry", 384),
                      ("hubble_deep_field", 384)]:
    img = Image.fromarray(getattr(data, name)())
    if longest:
        img.thumbnail((longest, longest), Image.LANCZOS)
    img.save(f"samples/inputs/{name}.png", optimize=True)
    print("wrote", f"samples/inputs/{name}.png", img.size)
EOF
  # Regions and transparency: the rocket photo with a mask of its sky, and the cat cut out (RGBA).
  "$PY" - <<'EOF'
import numpy as np
from PIL import Image, ImageFilter
import skimage.data as data

rocket = Image.fromarray(data.rocket())
rocket.thumbnail((384, 384), Image.LANCZOS)
rocket.save("samples/inputs/rocket.png", optimize=True)
a = np.asarray(rocket).astype(np.float32)
sky = ((a[..., 2] - a[..., 0]) > 25) & (a.mean(-1) < 200)  # blue, not a lamp: the sky
mask = Image.fromarray((sky * 255).astype(np.uint8)).filter(ImageFilter.MedianFilter(5))
mask.filter(ImageFilter.GaussianBlur(2)).save("samples/inputs/rocket_sky_mask.png", optimize=True)
print("wrote samples/inputs/rocket.png and rocket_sky_mask.png", rocket.size)

cat = Image.fromarray(data.chelsea()).convert("RGBA")  # 451x300
y, x = np.mgrid[0:cat.height, 0:cat.width]
r = np.hypot((x - 215) / 190, (y - 150) / 150)  # an ellipse around the cat, with a soft edge
alpha = np.clip((1.0 - r) / 0.08, 0, 1) * 255
cat.putalpha(Image.fromarray(alpha.astype(np.uint8)))
cat.save("samples/inputs/chelsea_cutout.png", optimize=True)
print("wrote samples/inputs/chelsea_cutout.png (RGBA)", cat.size)
EOF
  # The demo's style image: a DeepDream of the immunohistochemistry slide, made by dreamstyle.
  run $DS dream $IN/immunohistochemistry.png -o $IN/dream_style.png --size 320 --seed 0 --overwrite -q
fi

# --- style transfer -----------------------------------------------------------------------------
if want transfer; then
  run $DS transfer $IN/chelsea.png $IN/dream_style.png -o samples/transfer_chelsea_dream.png \
    --size 256 --iterations 200 --seed 0 --overwrite -q
  run $DS transfer $IN/astronaut.png $IN/hubble_deep_field.png -o samples/transfer_astronaut_hubble.png \
    --size 256 --iterations 200 --seed 0 --overwrite -q
fi

# --- compare: the same transfer on several backbones (only vgg19 has real weights offline) ------------
if want compare; then
  run $DS compare $IN/chelsea.png $IN/dream_style.png --backbones vgg19,vgg19:avg,vgg19:random \
    -o samples/compare --size 192 --iterations 100 --seed 0 --overwrite -q
fi

# --- sweep: a grid over two options (style weight by TV weight), one labelled sheet ------------------------
if want sweep; then
  run $DS sweep $IN/chelsea.png $IN/starry_night.jpg --vary style-weight=5e6,1.5e7,5e7 --vary tv-weight=0,3e4,3e5 \
    -o samples/sweep --size 160 --iterations 100 --seed 0 --overwrite -q
fi

# --- reconstruct: what single layers keep of the content, and growing sets of layers of the style -----
if want reconstruct; then
  run $DS reconstruct $IN/chelsea.png --layers conv1_1,conv2_1,conv3_1,conv4_1,conv5_1 --pooling avg \
    -o samples/reconstruct_content.png --size 192 --iterations 150 --seed 0 --overwrite -q
  run $DS reconstruct $IN/dream_style.png --style --layers conv1_1,conv2_1,conv3_1,conv4_1,conv5_1 --pooling avg \
    -o samples/reconstruct_style.png --size 192 --iterations 200 --seed 0 --overwrite -q
fi

# --- clip: a pan and zoom over chelsea.png, stylized with temporal coherence along optical flow ------
if want clip; then
  "$PY" - <<'PYEOF'
from PIL import Image
import skimage.data as data

cat = Image.fromarray(data.chelsea())  # 451x300
frames = []
for k in range(8):  # a slow pan to the right with a slight zoom in
    w = 380 - 8 * k
    h = w * 3 / 4
    cx, cy = 196 + 8 * k, 150
    box = (cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2)
    frames.append(cat.transform((160, 120), Image.Transform.EXTENT, box, Image.Resampling.BICUBIC))
frames[0].save("samples/inputs/chelsea_pan.png", save_all=True, append_images=frames[1:], duration=100, loop=0)
print("wrote samples/inputs/chelsea_pan.png (APNG)", frames[0].size, len(frames), "frames")
PYEOF
  run $DS transfer $IN/chelsea_pan.png $IN/dream_style.png -o samples/transfer_clip_chelsea.gif \
    --flow ilk --size 160 --iterations 120 --frame-iterations 50 --seed 0 --overwrite -q
fi

# --- regions and transparency -------------------------------------------------------------------
if want regions; then
  # the sky in The Starry Night, the rest (rocket, towers, ground) in Composition VII
  run $DS transfer $IN/rocket.png $IN/starry_night.jpg $IN/composition_vii.jpg --style-mask 1=$IN/rocket_sky_mask.png \
    -o samples/regions_rocket.png --size 384 --scales 192,384 --iterations 100 --seed 0 --overwrite -q
  # an RGBA cut-out stays one: only the cat is painted, the rest stays clear
  run $DS transfer $IN/chelsea_cutout.png $IN/great_wave.jpg -o samples/alpha_chelsea_wave.png \
    --size 384 --scales 192,384 --iterations 100 --seed 0 --overwrite -q
fi

# --- DeepDream and the hybrid ------------------------------------------------------------------------
if want dream; then
  # the defaults: vgg19 relu4_4, 4 octaves x 10 steps of 0.75, 32 px jitter
  run $DS dream $IN/chelsea.png -o samples/dream_chelsea.png --size 320 --seed 0 --overwrite -q
  # a shallower layer paints patterns rather than creatures
  run $DS dream $IN/astronaut.png --layer relu3_3 -o samples/dream_astronaut_relu3_3.png --size 320 --seed 0 \
    --overwrite -q
  # controlling dreams: the astronaut dreamed toward what the network sees in the cat
  run $DS dream $IN/astronaut.png --guide $IN/chelsea.png -o samples/dream_astronaut_guided_by_chelsea.png \
    --size 320 --seed 0 --overwrite -q
  # one channel visualized from noise
  run $DS dream --init noise --layer relu4_4:65 -o samples/dream_noise_relu4_4_65.png --size 192 --iterations 15 \
    --seed 0 --overwrite -q
  # the hybrid: style transfer that keeps a dream on a layer content and style leave unused (auto: relu4_4)
  run $DS transfer $IN/chelsea.png $IN/immunohistochemistry.png --dream-layer auto -o samples/hybrid_chelsea_ihc.png \
    --size 256 --iterations 150 --seed 0 --overwrite -q
fi

# --- feature visualization (vgg19 relu4_4, default weights) -----------------------------------------
if want vis; then
  V="--init noise --layer relu4_4:65 --size 160 --octaves 1 --iterations 128 --seed 0 --overwrite -q"
  # channel 65 from noise: pixels with jitter only, pixels with random transforms, the fft parametrization
  run $DS dream $V --transforms jitter --jitter 8 -o samples/vis_65_pixel_jitter.png
  run $DS dream $V --transforms jitter,scale,rotate --jitter 8 -o samples/vis_65_pixel.png
  run $DS dream $V --transforms jitter,scale,rotate --jitter 8 --param fft -o samples/vis_65_fft.png
  # the first 16 channels of relu4_4, one cell each (fft, transforms: the atlas's defaults)
  run $DS atlas vgg19 relu4_4 --channels 0-15 -o samples/atlas_relu4_4.png --seed 0 --overwrite -q
  # what the cat excites most in relu4_4: maps and visualizations of the top 4 channels
  run $DS activations $IN/chelsea.png --layer relu4_4 --top 4 -o samples/activations_chelsea.png --seed 0 \
    --overwrite -q
fi

if want zoom; then
  # DeepDream's infinite zoom: each frame the last one zoomed 4% and turned half a degree, dreamed again
  run $DS dream $IN/chelsea.png -o samples/dream_zoom_chelsea.gif --zoom-frames 30 --zoom 1.04 --rotate 0.5 \
    --size 160 --octaves 2 --iterations 10 --frame-iterations 4 --fps 12 --seed 0 --overwrite -q
fi

# --- your own network: a small one trained here on a synthetic task (one thread: faster on tiny batches) --
if want own; then
  run env OMP_NUM_THREADS=1 "$PY" samples/own_network.py samples/own_net.pt2
  run env OMP_NUM_THREADS=1 $DS channels samples/own_net.pt2 stage2 --channels 0-15 --size 96 -o samples/own_net_atlas.png --seed 0 --overwrite
fi

# --- instant styles: a style network trained here on the CPU, then pictures in one pass each --------
if want instant; then
  # the training photos: six of scikit-image's (not chelsea, which the network never sees), outside the repo
  PHOTOS=$(mktemp -d)
  "$PY" - "$PHOTOS" <<'EOF2'
import sys
from PIL import Image
import skimage.data as data

for name in ["astronaut", "coffee", "hubble_deep_field", "immunohistochemistry", "retina", "rocket"]:
    Image.fromarray(getattr(data, name)()).convert("RGB").save(f"{sys.argv[1]}/{name}.png")
EOF2
  T="--size 192 --batch 2 --seed 0 --overwrite -q"
  run $DS train "$PHOTOS" $IN/starry_night.jpg -o samples/starry_night.dsm --iterations 3000 --content-weight 1.2e7 $T
  run $DS stylize samples/starry_night.dsm $IN/chelsea.png -o samples/instant_chelsea.png --overwrite
  run $DS stylize samples/starry_night.dsm $IN/chelsea_pan.png -o samples/instant_clip_chelsea.gif --overwrite
  # the objective with a dream term: no other feed-forward tool trains against one
  run $DS train "$PHOTOS" $IN/great_wave.jpg -o samples/wave_dream.dsm --dream-layer auto --iterations 1372 \
    --content-weight 1.2e7 $T
  run $DS stylize samples/wave_dream.dsm $IN/chelsea.png -o samples/instant_dream_chelsea.png --overwrite
  rm -rf "$PHOTOS"
fi

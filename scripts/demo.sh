#!/usr/bin/env bash
# The main job, end to end: sample images -> index -> text and image search -> sizing.
# Uses the real pretrained models when their weights are available (or can be downloaded);
# otherwise says so and runs the same pipeline on random-weight models of the same architecture.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
SAMPLES=${SAMPLES:-data/samples}
export LOOKALIKE_HOME=${LOOKALIKE_HOME:-$PWD/data/home}
LA="$VENV/bin/lookalike"
COLLECTION=samples

echo "== 1. sample collection in $SAMPLES"
"$VENV/bin/python" scripts/make_samples.py "$SAMPLES"

echo "== 2. models"
if ! "$LA" models --no-load; then
  echo
  echo "!! The pretrained weights above are not available on this machine (see the message for how to"
  echo "!! provide them). Continuing with RANDOM-WEIGHT models of the same architecture, so the whole"
  echo "!! pipeline runs; the search results below are meaningless until real weights are in place."
  "$VENV/bin/python" scripts/make_random_models.py data/random-models
  export LOOKALIKE_MODEL=$PWD/data/random-models/clip-ViT-B-32-random
  export LOOKALIKE_TEXT_MODEL=$PWD/data/random-models/multilingual-random
  COLLECTION=samples-random
fi

echo "== 3. index (incremental: run it again and nothing is re-embedded)"
"$LA" index --collection "$COLLECTION" "$SAMPLES"

echo "== 4. search by text, in English and in German"
"$LA" search --collection "$COLLECTION" "green recycle symbol" -k 5
"$LA" search --collection "$COLLECTION" "grünes Recycling-Symbol" -k 5

echo "== 5. similar to an image file"
first=$(find "$SAMPLES" -type f -name '*recycle*' | sort | head -n 1)
"$LA" similar --collection "$COLLECTION" "$first" -k 5

echo "== 6. sizing"
"$LA" stats --collection "$COLLECTION"

echo "== 7. search quality on the samples' labelled queries (its folders are the labels)"
if [ "$COLLECTION" = samples-random ]; then
  echo "!! random-weight models: these figures are chance level, not a measure of lookalike"
fi
"$LA" eval --collection "$COLLECTION" scripts/samples-labels.yaml --root "$SAMPLES"

# remember the choices for `make serve`
{
  echo "LOOKALIKE_HOME=$LOOKALIKE_HOME"
  echo "LOOKALIKE_COLLECTION=$COLLECTION"
  if [ -n "${LOOKALIKE_MODEL:-}" ]; then echo "LOOKALIKE_MODEL=$LOOKALIKE_MODEL"; fi
  if [ -n "${LOOKALIKE_TEXT_MODEL:-}" ]; then echo "LOOKALIKE_TEXT_MODEL=$LOOKALIKE_TEXT_MODEL"; fi
} > data/demo.env
echo
echo "Next: make serve   (then open http://127.0.0.1:8000)"

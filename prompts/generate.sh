#!/usr/bin/env bash
# Re-creates dialgate's default English prompt set in prompts/en/.
#
# Every prompt is synthesised with espeak-ng and converted with sox to what the
# media layer loads without resampling: 8 kHz, mono, 16-bit signed PCM WAV.
# dialgate refuses any other format at start-up (see src/media/prompts.rs).
#
# Level: each prompt aims at -16 dBFS RMS (a comfortable telephone speech level)
# but never above a -1 dBFS peak, so nothing clips; where the ceiling wins the
# level ends a little lower (the committed set measures about -17 to -20 dBFS RMS
# over active speech).
#
# Requirements: espeak-ng, sox (Debian: apt-get install espeak-ng sox).
# Usage:        prompts/generate.sh            (from anywhere; writes next to this script)
#               VOICE=en-us prompts/generate.sh
#
# The generated WAVs are committed, so building and testing dialgate does not
# need either tool. File names must match PromptId::file_stem in src/media/mod.rs.
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
out="$here/en"
voice="${VOICE:-en-us}"
speed="${SPEED:-150}"      # words per minute: slower than espeak's 175 for phone clarity
target_rms_db=-16
peak_ceiling_db=-1

for tool in espeak-ng sox; do
    command -v "$tool" >/dev/null || { echo "generate.sh: $tool not found" >&2; exit 1; }
done
mkdir -p "$out"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

# stem|text
prompts=(
    "welcome|Welcome. Please enter your conference ID, followed by the pound key."
    "not-valid|That conference ID is not valid. Please try again."
    "timeout|We didn't receive your conference ID."
    "joining|Thank you. You're joining the meeting now."
    "goodbye|Sorry, we couldn't find that meeting. Goodbye."
    "bridge-unavailable|Sorry, we can't connect you to the meeting right now. Please try again later. Goodbye."
    "too-many-attempts|Sorry, too many attempts. Please try again later. Goodbye."
)

# Prints one field of `sox --stats` (e.g. "RMS lev dB", "Pk lev dB") for a file.
stat() { sox "$1" -n stats 2>&1 | awk -v k="$2" 'index($0, k) == 1 { print $NF }'; }

for entry in "${prompts[@]}"; do
    stem="${entry%%|*}"
    text="${entry#*|}"
    raw="$tmp/$stem.raw.wav"
    tel="$tmp/$stem.8k.wav"
    espeak-ng -v "$voice" -s "$speed" -w "$raw" "$text"
    # Telephone band (300-3400 Hz), a gentle compressor above -24 dB to lower the
    # crest factor (so the RMS target fits under the peak ceiling), 8 kHz mono
    # 16-bit, and short silences around the speech so the first syllable is not
    # lost while the far end's jitter buffer settles.
    sox "$raw" -r 8000 -c 1 -b 16 -e signed-integer "$tel" \
        gain -6 highpass 300 lowpass 3400 compand 0.005,0.1 -70,-70,-24,-24,0,-12 pad 0.2 0.3 rate -v 8000
    # One gain: the RMS target, unless that would push the peak past the ceiling.
    rms="$(stat "$tel" "RMS lev dB")"
    peak="$(stat "$tel" "Pk lev dB")"
    gain="$(awk -v r="$rms" -v p="$peak" -v t="$target_rms_db" -v c="$peak_ceiling_db" \
        'BEGIN { g = t - r; m = c - p; printf "%.2f", (g < m ? g : m) }')"
    sox "$tel" -r 8000 -c 1 -b 16 -e signed-integer "$out/$stem.wav" gain "$gain"
    printf '%-20s rms %6s dBFS  peak %6s dBFS  %ss\n' "$stem.wav" \
        "$(stat "$out/$stem.wav" "RMS lev dB")" "$(stat "$out/$stem.wav" "Pk lev dB")" \
        "$(soxi -D "$out/$stem.wav")"
done

#!/bin/sh
# make-prompts.sh OUTDIR - generates the English voicemail prompts as 8 kHz
# mono 16-bit PCM WAV files (what wav_load accepts) with espeak-ng and sox,
# so no binary sound file is committed. Run by the build (CMake target
# `prompts`); a prompt set can be replaced by a directory of files with the
# same names. Regenerates only what is missing or older than this script.
set -eu
OUT=${1:?usage: make-prompts.sh OUTDIR}
SELF=$0
command -v espeak-ng >/dev/null || { echo "make-prompts: espeak-ng is missing (scripts/install-deps.sh)" >&2; exit 1; }
command -v sox >/dev/null || { echo "make-prompts: sox is missing (scripts/install-deps.sh)" >&2; exit 1; }
mkdir -p "$OUT"
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT

# name: text
say() {
	name=$1
	shift
	f="$OUT/$name.wav"
	if [ -f "$f" ] && [ "$f" -nt "$SELF" ]; then return 0; fi
	espeak-ng -v en-us -s 150 -w "$TMP/raw.wav" "$*"
	sox -q "$TMP/raw.wav" -r 8000 -c 1 -b 16 -e signed-integer "$TMP/$name.wav" norm -3
	mv "$TMP/$name.wav" "$f"
}

say greeting-default "The person you are calling is not available. Please leave a message after the tone. Press pound when you are done."
say you-have "You have"
say new-message "new message"
say new-messages "new messages"
say saved-messages "saved messages"
say no-messages "You have no messages."
say menu "To listen to your messages, press 1. To change your greeting, press 3. To change your PIN, press 4."
say message-menu "To replay this message, press 1. To save it, press 2. To delete it, press 7. For the next message, press 3."
say enter-mailbox "Please enter your mailbox number, followed by pound."
say enter-pin "Please enter your PIN, followed by pound."
say bad-pin "That PIN is not correct."
say message-from "Message from"
say received "Received"
say deleted "Message deleted."
say saved "Message saved."
say record-greeting "Record your greeting after the tone. Press pound when you are done."
say goodbye "Goodbye."
for n in 0 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20 30 40 50 60 70 80 90; do
	say "n$n" "$n"
done
say n100 "hundred"
if ! [ -f "$OUT/beep.wav" ] || ! [ "$OUT/beep.wav" -nt "$SELF" ]; then
	sox -q -n -r 8000 -c 1 -b 16 -e signed-integer "$TMP/beep.wav" synth 0.4 sine 1000 vol 0.5
	mv "$TMP/beep.wav" "$OUT/beep.wav"
fi

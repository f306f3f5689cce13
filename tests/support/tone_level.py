#!/usr/bin/env python3
"""Level of a 16-bit mono WAV: `tone_level.py FILE [HZ...]` prints
"rms_db=R" and, per HZ, "share_HZ=S": the part of the signal's power at
that frequency (Goertzel over 20 ms blocks, summed), 0..1. For tests that
must tell a ring tone or a test tone from noise or silence."""
import array
import math
import sys
import wave

def main():
    path, freqs = sys.argv[1], [float(f) for f in sys.argv[2:]]
    with wave.open(path, "rb") as w:
        if w.getsampwidth() != 2 or w.getnchannels() != 1:
            sys.exit("tone_level: want 16-bit mono")
        rate = w.getframerate()
        x = array.array("h", w.readframes(w.getnframes()))
    if not x:
        print("rms_db=-inf")
        return
    power = sum(v * v for v in x) / len(x)
    rms_db = 10 * math.log10(power / 32768.0**2) if power > 0 else float("-inf")
    out = ["rms_db=%.1f" % rms_db]
    block = rate // 50
    for f in freqs:
        k = 2 * math.cos(2 * math.pi * f / rate)
        tone = 0.0
        for b in range(0, len(x) - block + 1, block):
            s1 = s2 = 0.0
            for v in x[b:b + block]:
                s1, s2 = v + k * s1 - s2, s1
            # Goertzel magnitude^2 -> the power of a sine at f in this block
            tone += (s1 * s1 + s2 * s2 - k * s1 * s2) * 2 / (block * block)
        n_blocks = max(1, (len(x) - block + 1 + block - 1) // block)
        share = (tone / n_blocks) / power if power > 0 else 0.0
        out.append("share_%g=%.2f" % (f, min(share, 1.0)))
    print(" ".join(out))

main()

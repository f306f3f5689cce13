/*
 * The one audio format wzp calls use end to end: 48 kHz mono, 20 ms frames.
 * Fixing it keeps the codec, playout buffer, generators and files in step
 * (a media timestamp is a sample count at this rate).
 */
#ifndef WZP_MEDIA_AUDIO_FORMAT_H
#define WZP_MEDIA_AUDIO_FORMAT_H

#define WZP_AUDIO_RATE          48000
#define WZP_AUDIO_FRAME_MS      20
#define WZP_AUDIO_FRAME_SAMPLES 960 /* WZP_AUDIO_RATE * WZP_AUDIO_FRAME_MS / 1000 */

/* What a frame source handed over: silence (the frame is zeros), speech, or real background
 * sound with nobody speaking (sent as is, or left out by DTX). */
typedef enum wzp_pcm_kind {
    WZP_PCM_SILENCE = 0,
    WZP_PCM_VOICE = 1,
    WZP_PCM_BACKGROUND = 2,
} wzp_pcm_kind;

#endif

/*
 * Audio files for calls: read anything libsndfile reads (WAV, FLAC, OGG,
 * AIFF, ...; any rate and channel count) as 48 kHz mono, and write 48 kHz
 * mono 16-bit WAV. Channels are averaged; other rates go through speexdsp's
 * resampler (quality 5), with its filter delay removed, so sample i of the
 * result lines up with time i/48000 s of the file.
 *
 * Files are the only I/O in src/media. Errors: WZP_ERR_NOT_FOUND when the
 * file does not exist, WZP_ERR_AUDIO when it exists but is not readable
 * audio (permissions, format, corrupt), WZP_ERR_TOO_BIG beyond
 * WZP_AUDIO_MAX_SECONDS, WZP_ERR_IO for write failures.
 */
#ifndef WZP_MEDIA_AUDIO_FILE_H
#define WZP_MEDIA_AUDIO_FILE_H

#include <stddef.h>
#include <stdint.h>

#define WZP_AUDIO_MAX_SECONDS 3600

/* *out is malloc'd (free() it); *n samples at 48 kHz mono. */
int wzp_audio_read(const char *path, float **out, size_t *n);
int wzp_audio_read_s16(const char *path, int16_t **out, size_t *n);

int wzp_audio_write_wav(const char *path, const int16_t *pcm, size_t n);
int wzp_audio_write_wav_float(const char *path, const float *pcm, size_t n); /* clipped */

/* Mono resampling, delay-compensated; *nout = round(n * out_rate / in_rate). */
int wzp_audio_resample(const float *in, size_t n, int in_rate, int out_rate, float **out,
                       size_t *nout);

void wzp_audio_s16_to_float(const int16_t *in, float *out, size_t n);
void wzp_audio_float_to_s16(const float *in, int16_t *out, size_t n); /* clipped, rounded */

/* Streaming writer for recording a call frame by frame (48 kHz mono s16). */
typedef struct wzp_wav_writer wzp_wav_writer;
/* 0, or WZP_ERR_INVALID / WZP_ERR_NOMEM / WZP_ERR_IO (*out untouched). */
int wzp_wav_writer_open(wzp_wav_writer **out, const char *path);
int wzp_wav_writer_write(wzp_wav_writer *w, const int16_t *pcm, size_t n);
/* Finalises the header and frees w; returns the first error seen, if any. */
int wzp_wav_writer_close(wzp_wav_writer *w);

/*
 * A recording target opened before a call and written once when it ends
 * (48 kHz mono 16-bit WAV), so a bad path fails before the call and a
 * failure never leaves a torn file behind.
 *
 * A regular file, or a path that does not exist yet, is written to a temp
 * file in the same directory (created by _open: that is the early check) and
 * renamed over the target only after a complete, fsync'ed write; _abort and
 * a failed _commit remove the temp file, leaving any old target untouched.
 * Anything else (a character device such as /dev/full, a FIFO) is written
 * directly: _open writes the header (sizes marked unknown, as for streams)
 * so a full device fails there already, and every write and the close are
 * checked.
 *
 * Errors: WZP_ERR_IO with *sys_errno (may be NULL) set to the errno of the
 * failing call, WZP_ERR_INVALID, WZP_ERR_NOMEM.
 */
typedef struct wzp_wav_recorder wzp_wav_recorder;
int wzp_wav_recorder_open(wzp_wav_recorder **out, const char *path, int *sys_errno);
/* Writes the n samples and completes the file; frees r whatever the result. */
int wzp_wav_recorder_commit(wzp_wav_recorder *r, const int16_t *pcm, size_t n, int *sys_errno);
/* Gives up: removes the temp file (a direct target keeps what was written); frees r. */
void wzp_wav_recorder_abort(wzp_wav_recorder *r);

#endif

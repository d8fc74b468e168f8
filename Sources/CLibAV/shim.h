#ifndef LIVEHUB_CLIBAV_SHIM_H
#define LIVEHUB_CLIBAV_SHIM_H
// libav (Debian 12: libavformat 59, libavcodec 59, libavutil 57) for Swift.
// Function-like macros are not importable into Swift (PROTOCOLS.md §2): wrap them here.
#include <libavformat/avformat.h>
#include <libavformat/avio.h>
#include <libavcodec/avcodec.h>
#include <libavcodec/bsf.h>
#include <libavutil/avutil.h>
#include <libavutil/error.h>
#include <libavutil/opt.h>
#include <libavutil/imgutils.h>
#include <libavutil/channel_layout.h>
#include <libavutil/mathematics.h>
#include <libavutil/time.h>
#include <libswscale/swscale.h>

static inline int livehub_averror(int posix_errno) { return AVERROR(posix_errno); }
static inline int livehub_averror_eof(void) { return AVERROR_EOF; }
static inline int livehub_averror_invaliddata(void) { return AVERROR_INVALIDDATA; }
static inline int64_t livehub_av_nopts_value(void) { return AV_NOPTS_VALUE; }
static inline AVRational livehub_av_time_base_q(void) { return AV_TIME_BASE_Q; }
/// Copies the libav error text for `code` into `buffer` (av_err2str is a macro with a compound literal).
static inline void livehub_av_strerror(int code, char *buffer, size_t size) { av_strerror(code, buffer, size); }

/// MKTAG('a','b','c','d') for codec tags such as `hvc1`.
static inline unsigned int livehub_mktag(char a, char b, char c, char d) { return MKTAG(a, b, c, d); }
static inline int livehub_input_buffer_padding_size(void) { return AV_INPUT_BUFFER_PADDING_SIZE; }
static inline int livehub_ff_qp2lambda(void) { return FF_QP2LAMBDA; }
/// The AVIO write callback type of libavformat 59 (non-const buffer).
typedef int (*livehub_avio_write_fn)(void *opaque, uint8_t *buf, int buf_size);
static inline AVIOContext *livehub_avio_alloc_write_context(unsigned char *buffer, int size, void *opaque,
                                                            livehub_avio_write_fn write) {
    return avio_alloc_context(buffer, size, 1, opaque, NULL, write, NULL);
}

#endif

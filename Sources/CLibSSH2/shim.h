// Why this shim exists: libssh2's public API is imported through this header only.
// Function-like macros (libssh2_channel_open_session, libssh2_channel_read, ...) are not
// imported by Swift, so callers use the `_ex` functions; constants defined as macros
// that Swift cannot see are re-exported here as static constants.
#ifndef SMCPAIR_CLIBSSH2_SHIM_H
#define SMCPAIR_CLIBSSH2_SHIM_H

#include <libssh2.h>
#include <libssh2_sftp.h>

static const unsigned int smcpair_ssh2_channel_window_default = LIBSSH2_CHANNEL_WINDOW_DEFAULT;
static const unsigned int smcpair_ssh2_channel_packet_default = LIBSSH2_CHANNEL_PACKET_DEFAULT;

#endif

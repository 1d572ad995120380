// Why this target exists: two signal handlers that must touch only async-signal-safe state.
// Swift globals are lazily initialised and reference counted, so the handlers and the
// fixed tables they read live here in C; nothing else belongs here.
//
// 1. Temporary output files (merge outputs before their rename) are unlinked on SIGINT or
//    SIGTERM, then the signal is re-raised with its default action.
// 2. A read-only file mapping whose file shrinks underneath raises SIGBUS on the next touch
//    of a page past the new end. For registered mappings the handler maps a zero page over
//    the faulting page and marks the mapping; the reader then reports the shrink as damage
//    (with a byte offset) instead of the process dying. Other SIGBUS keep their default.
#ifndef SMCPAIR_CFILESAFETY_H
#define SMCPAIR_CFILESAFETY_H

#include <stddef.h>

/// Registers a temporary path to unlink on SIGINT/SIGTERM. Returns a slot (>= 0), or -1
/// when the table is full or the path too long (the path is then simply not cleaned up).
int smcpair_temporary_register(const char *path);

/// Forgets a slot (the file was renamed or removed).
void smcpair_temporary_unregister(int slot);

/// Forgets every slot holding `path`.
void smcpair_temporary_unregister_path(const char *path);

/// Installs the SIGINT/SIGTERM handler that unlinks registered paths and re-raises.
void smcpair_temporary_install_handlers(void);

/// Registers `[start, start + length)` as a guarded file mapping (installs the SIGBUS
/// handler once). Returns a slot (>= 0), or -1 when the table is full (unguarded).
int smcpair_mapping_register(const void *start, size_t length);

/// Whether a page of the mapping in `slot` was replaced by zeros since registration.
int smcpair_mapping_faulted(int slot);

/// Forgets a slot before the mapping is unmapped.
void smcpair_mapping_unregister(int slot);

#endif

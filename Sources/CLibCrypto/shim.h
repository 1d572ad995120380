// Why this shim exists: SHA-256 of capture files (hundreds of MB) is on the critical path of
// every pull and every agent finalize. OpenSSL's libcrypto (already loaded by libssh2) uses
// the CPU's SHA instructions and is several times faster than portable code. Only the EVP
// digest API is used, through the Checksum module.
#ifndef SMCPAIR_CLIBCRYPTO_SHIM_H
#define SMCPAIR_CLIBCRYPTO_SHIM_H

#include <openssl/evp.h>

#endif

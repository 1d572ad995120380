// Why this shim exists: libpcap's API is imported through this header only, so the
// Swift side sees exactly pcap.h and nothing from other OS headers (extra OS headers in a
// system-library shim broke release builds). PCAP_ERRBUF_SIZE is a macro that Swift
// imports as an Int32; it is repeated here as a typed constant for buffer sizing.
#ifndef SMCPAIR_CLIBPCAP_SHIM_H
#define SMCPAIR_CLIBPCAP_SHIM_H

#include <pcap/pcap.h>

static const int smcpair_pcap_errbuf_size = PCAP_ERRBUF_SIZE;

#endif

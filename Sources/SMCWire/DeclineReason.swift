/// SMC CLC decline / fallback reason codes (Linux `SMC_CLC_DECL_*`).
public enum DeclineReason {
  /// Every code Linux and ANCK are known to send, with the kernel's short name.
  public static let names: [UInt32: String] = [
    0x0101_0000: "MEM",
    0x0201_0000: "TIMEOUT_CL",
    0x0202_0000: "TIMEOUT_AL",
    0x0300_0000: "CNFERR",
    0x0301_0000: "PEERNOSMC",
    0x0302_0000: "IPSEC",
    0x0303_0000: "NOSMCDEV",
    0x0303_0001: "NOSMCDDEV",
    0x0303_0002: "NOSMCRDEV",
    0x0303_0003: "NOISM2SUPP",
    0x0303_0004: "NOV2EXT",
    0x0303_0005: "NOV2DEXT",
    0x0303_0006: "NOSEID",
    0x0303_0007: "NOSMCD2DEV",
    0x0303_0008: "NOUEID",
    0x0303_0009: "RELEASEERR",
    0x0303_000a: "MAXCONNERR",
    0x0303_000b: "MAXLINKERR",
    0x0304_0000: "MODEUNSUPP",
    0x0305_0000: "RMBE_EC",
    0x0306_0000: "OPTUNSUPP",
    0x0307_0000: "DIFFPREFIX",
    0x0308_0000: "GETVLANERR",
    0x0309_0000: "ISMVLANERR",
    0x030a_0000: "NOACTLINK",
    0x030b_0000: "NOSRVLINK",
    0x030c_0000: "VERSMISMAT",
    0x030d_0000: "MAX_DMB",
    0x030e_0000: "NOROUTE",
    0x030f_0000: "NOINDIRECT",
    0x0400_0000: "SYNCERR",
    0x0500_0000: "PEERDECL",
    0x0999_0000: "INTERR",
    0x0999_0001: "ERR_RTOK",
    0x0999_0002: "ERR_RDYLNK",
    0x0999_0003: "ERR_REGRMB",
  ]

  /// What each code means, for the summary.
  public static let explanations: [UInt32: String] = [
    0x0101_0000: "insufficient memory",
    0x0201_0000: "timeout waiting for CONFIRM LINK",
    0x0202_0000: "timeout waiting for ADD LINK",
    0x0300_0000: "configuration error",
    0x0301_0000: "peer did not indicate SMC",
    0x0302_0000: "IPsec in use",
    0x0303_0000: "no SMC device found (R or D)",
    0x0303_0001: "no SMC-D device found",
    0x0303_0002: "no SMC-R device found",
    0x0303_0003: "hardware has no ISMv2 support",
    0x0303_0004: "peer sent no CLC v2 extension",
    0x0303_0005: "peer sent no SMC-Dv2 extension",
    0x0303_0006: "peer sent no SEID",
    0x0303_0007: "no SMC-Dv2 device found",
    0x0303_0008: "peer sent no UEID",
    0x0303_0009: "release version negotiation failed",
    0x0303_000a: "max connections negotiation failed",
    0x0303_000b: "max links negotiation failed",
    0x0304_0000: "SMC modes do not match (R or D)",
    0x0305_0000: "peer has eyecatcher in RMBE",
    0x0306_0000: "socket option not supported (e.g. TCP fastopen)",
    0x0307_0000: "IP prefix / subnet mismatch",
    0x0308_0000: "cannot get VLAN id of IP device",
    0x0309_0000: "cannot register VLAN id on ISM device",
    0x030a_0000: "no active SMC-R link in link group",
    0x030b_0000: "SMC-R link from server not found",
    0x030c_0000: "SMC version mismatch",
    0x030d_0000: "SMC-D DMB limit exceeded",
    0x030e_0000: "SMC-Rv2 connection: no route to peer",
    0x030f_0000: "SMC-Rv2 connection: indirect mismatch",
    0x0400_0000: "synchronization error",
    0x0500_0000: "peer declined during handshake",
    0x0999_0000: "internal error",
    0x0999_0001: "rtoken handling failed",
    0x0999_0002: "IB ready link failed",
    0x0999_0003: "registering RDMA buffers failed",
  ]

  /// The short name, or a category name for codes not in the table.
  public static func name(_ code: UInt32) -> String {
    if let name = names[code] { return name }
    switch code >> 24 {
    case 0x01: return "UNKNOWN_RESOURCE"
    case 0x02: return "UNKNOWN_TIMEOUT"
    case 0x03: return "UNKNOWN_CONFIG"
    case 0x04: return "UNKNOWN_SYNC"
    case 0x05: return "UNKNOWN_PEER"
    case 0x09: return "UNKNOWN_INTERNAL"
    default: return "UNKNOWN"
    }
  }

  /// `"0x03030002"` form used in JSON.
  public static func hexCode(_ code: UInt32) -> String {
    var out: [UInt8] = Array("0x".utf8)
    TextWriter.hex(UInt64(code), minimumDigits: 8, into: &out)
    return String(decoding: out, as: UTF8.self)
  }
}
